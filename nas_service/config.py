"""Service settings, read from `NAS_*` environment variables only when `Settings()` is created.

Nothing reads the environment at import time: the CLI, the API factory and the tests create a
`Settings` explicitly and hand it (or the engine built from it) to the functions that need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAS_", extra="ignore")

    database_url: str = Field(default="sqlite:///nas.db", description="SQLAlchemy URL; SQLite file in the working "
                              "dir by default, `postgresql+psycopg://user@host/db` for workers on many machines.")
    artifacts_dir: Path = Field(default=Path("nas_artifacts"),
                                description="Scratch space of a worker's exports, and the filesystem artifact "
                                "store's home (`<artifacts_dir>/store`).")
    artifact_store: str | None = Field(default=None, description="Where models and uploaded datasets are kept: "
                                       "`file` (under artifacts_dir), `db` (chunks in the database), or "
                                       "`s3://bucket/prefix` (with the usual AWS_* variables); unset: `file` on "
                                       "SQLite, `db` on PostgreSQL, so workers anywhere need only the database URL.")
    dataset_max_bytes: int = Field(default=512 * 2**20, ge=1, description="Largest dataset one upload may be "
                                   "(`POST /datasets`, `nas datasets upload`); 413 above it.")
    dataset_quota_bytes: int = Field(default=2 * 2**30, ge=1, description="Total size of the datasets one user may "
                                     "keep uploaded; 413 past it (delete some with `nas datasets rm`).")
    device_class: Literal["auto", "cpu", "gpu"] = Field(default="auto", description="The jobs a worker takes (`nas "
                                                        "worker --device-class`): those asking for `any` or this "
                                                        "class, its own first; auto: gpu where TensorFlow sees a "
                                                        "GPU, else cpu.")
    heartbeat_interval_s: int = Field(default=10, ge=1, description="Seconds between trial heartbeats of a worker.")
    heartbeat_grace_s: int = Field(default=30, ge=2, description="A running trial without a heartbeat for this long "
                                   "is failed and re-queued.")
    poll_interval_s: float = Field(default=1.0, gt=0, description="How often an idle worker looks for queued jobs.")
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0,
                                         description="How long SQLite waits for a lock before failing.")
    batched_storage: bool = Field(default=True, description="Wrap Optuna's RDB storage in `BatchedStorage` (one "
                                  "transaction per trial's parameters); off: Optuna's own storage, as it is.")
    data_dir: Path | None = Field(default=None, description="The only directory whose folders and .npz files "
                                  "jobs submitted over the API may use as datasets; unset, the API accepts named "
                                  "datasets only (the CLI reads any local path).")
