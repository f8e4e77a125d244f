"""The REST API: `create_app(settings)` builds the FastAPI app serving `/api/v1`, the metrics and the dashboard.

Importing this package opens no database, reads no environment and never imports TensorFlow.
"""

from nas_service.api.app import create_app

__all__ = ["create_app"]
