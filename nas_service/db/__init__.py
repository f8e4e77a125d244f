"""The service's own tables (jobs, candidates, trials, Pareto fronts), its engine and its migrations.

Optuna's RDB storage keeps its own tables in the same database; ours are all prefixed `nas_` and
versioned in `nas_alembic_version`, so neither side's migrations see the other's tables.
"""

from nas_service.db.engine import make_engine, session_factory
from nas_service.db.migrate import upgrade_head
from nas_service.db.models import Artifact, Base, Candidate, Job, Trial
from nas_service.db.users import ApiToken, User

__all__ = ["ApiToken", "Artifact", "Base", "Candidate", "Job", "Trial", "User", "make_engine", "session_factory",
           "upgrade_head"]
