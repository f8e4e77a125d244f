"""The NAS service: database, controller, trainer, API, dashboard, CLI and workers."""
