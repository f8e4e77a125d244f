"""`nas worker`: a process that claims queued jobs and runs their trials, alone or with many others.

Run as many as you like, on as many machines as can reach the PostgreSQL database. SIGTERM or
Ctrl-C lets the current trial finish and then exits; SIGKILL loses only the trial in flight, which
another worker re-queues once its heartbeat is stale. A restarted worker resumes unfinished jobs.
`nas search` interrupts instead (`Worker.interrupt`): its trials in flight are given back at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import FrameType

import optuna
from sqlalchemy.orm import Session

from nas_service.config import Settings
from nas_service.controller.batched_storage import batched
from nas_service.controller.scoring import Scorer
from nas_service.controller.study import make_storage, quiet_optuna
from nas_service.controller.training_process import kill_children
from nas_service.db import make_engine, session_factory, upgrade_head
from nas_service.db.artifacts import make_store
from nas_service.db.engine import is_connection_lost, retry_on_connection_loss
from nas_service.db.job_queue import claim_job, device_classes_asked, fail_job
from nas_service.db.migrate import schema_lock
from nas_service.devices import DeviceClass, worker_device_class
from nas_service.services.work import RunContext, TrialHook, run_job, stale_hook

log = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """A worker bound to one database. `run` loops until stopped, or until idle when `exit_when_idle`."""

    settings: Settings
    name: str = "local"
    scorer: Scorer | None = None
    on_trial: TrialHook | None = None
    refill: bool = True
    """See `RunContext.refill`."""
    device_class: DeviceClass | None = None
    """The jobs it claims (`claim_job`); None: found out (`worker_device_class`, which may import TensorFlow) only
    once some unfinished job asks for a class by name, taking `any` jobs until then."""

    def __post_init__(self) -> None:
        quiet_optuna()
        self.engine = make_engine(self.settings.database_url, busy_timeout_s=self.settings.sqlite_busy_timeout_s)
        self.sessions = session_factory(self.engine)
        with schema_lock(self.engine):  # workers starting together must not race to create tables
            upgrade_head(self.engine, lock=False, settings=self.settings)
            backend = make_storage(self.settings.database_url, heartbeat_interval_s=self.settings.heartbeat_interval_s,
                                   grace_s=self.settings.heartbeat_grace_s, on_stale=stale_hook(self.sessions),
                                   busy_timeout_s=self.settings.sqlite_busy_timeout_s)
        storage = batched(backend) if self.settings.batched_storage else backend
        self.stopping = threading.Event()
        self.interrupted = threading.Event()
        self.ctx = RunContext(self.sessions, storage, self.settings.artifacts_dir, self.name,
                              self.settings.heartbeat_grace_s, self.scorer, self.on_trial, self.refill,
                              self.interrupted.is_set, store=make_store(self.settings, self.engine))

    def run(self, *, job_id: int | None = None, exit_when_idle: bool = False,
            on_idle: Callable[[], None] | None = None) -> None:
        """Claim and run jobs (only `job_id` if given) until stopped; with `exit_when_idle`, until none is left."""
        while not self.stopping.is_set():
            try:
                with self.sessions() as session:
                    claimed = claim_job(session, self.name, only=job_id, device_class=self._device_class(session))
            except Exception as exc:
                if not self._database_away(exc, "looking for jobs"):
                    raise
                continue
            if claimed is None:
                if exit_when_idle:
                    return
                if on_idle is not None:
                    on_idle()
                self.stopping.wait(self.settings.poll_interval_s)
                continue
            try:
                finished = run_job(self.ctx, claimed, stop=self.stopping.is_set)
            except Exception as exc:
                if self._database_away(exc, f"running job {claimed}"):  # the job is fine: retry it later
                    continue
                # the job cannot run: record why, keep serving the others
                reason = retry_on_connection_loss(partial(self._fail, claimed, exc), what=f"failing job {claimed}")
                log.warning("worker %s: job %d failed: %s", self.name, claimed, reason)
                continue
            if not finished:  # others still run its last trials, or a lost one awaits its grace period
                self.stopping.wait(self.settings.poll_interval_s)

    def _device_class(self, session: Session) -> DeviceClass | None:
        if self.device_class is None and device_classes_asked(session):
            self.device_class = worker_device_class(self.settings)
            log.info("worker %s: device class %s (%s), looked up as a job asks for one", self.name,
                     self.device_class, "NAS_DEVICE_CLASS" if self.settings.device_class != "auto"
                     else "TensorFlow sees a GPU" if self.device_class == "gpu" else "TensorFlow sees no GPU")
        return self.device_class

    def _database_away(self, exc: Exception, doing: str) -> bool:
        """True (after logging it and waiting a poll interval) when `exc` is the database going away."""
        if not is_connection_lost(exc):
            return False
        log.warning("worker %s: database unavailable while %s, retrying: %s", self.name, doing,
                    str(exc).splitlines()[0])
        self.stopping.wait(self.settings.poll_interval_s)
        return True

    def _fail(self, job_id: int, exc: Exception) -> str:
        with self.sessions() as session:
            return fail_job(session, job_id, exc)

    def interrupt(self) -> None:
        """Stop now, giving up the trials in flight: their training processes are killed, and each trial is
        marked stale with its budget unit given back and its parameters re-queued, so that a resumed job
        runs them again. An in-process training ends at its next epoch. Safe in a signal handler."""
        self.interrupted.set()
        self.stopping.set()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # not a warning with a traceback per trial given up
        kill_children()

    def stop_on_signals(self) -> None:
        """SIGTERM/SIGINT: finish the trial in flight, then leave."""
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def close(self) -> None:
        self.engine.dispose()

