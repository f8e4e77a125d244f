"""One trial of a job, as Optuna's objective: sample, price, check constraints, reuse or train, record.

`TrialObjective` composes the steps; the rows it reads and writes are `db.trial_records`'s, and what
it settled is kept as a frozen `Outcome` for the caller (progress hooks, telling Optuna again).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts._protocol import ArtifactStore
from sqlalchemy.orm import Session, sessionmaker

from nas_service.controller import early_stop, pareto
from nas_service.controller.latency import predict_latency
from nas_service.controller.rewards import reward
from nas_service.controller.scoring import Scorer, arch_hash, make_scorer
from nas_service.controller.study import RETRY
from nas_service.controller.supernet_store import SUPERNET_DIR, Checkpoints, StoredCheckpoints
from nas_service.controller.training_process import ProcessTrainScorer
from nas_service.db import artifacts, job_queue, trial_records
from nas_service.db.engine import is_connection_lost, retry_on_connection_loss
from nas_service.db.models import Candidate
from nas_service.spec import Constraints, JobSpec
from search_spaces import Analysis, ArchSpec, analyze, encode, load_space

log = logging.getLogger(__name__)


class TrialInterrupted(Exception):
    """The search was interrupted (Ctrl-C, SIGTERM) while this trial ran: it is given back, not failed."""


@dataclass(frozen=True)
class Outcome:
    """What a trial settled as. `told` are the values returned to Optuna (None for a failed trial);
    `recorded` is False when an earlier attempt had already recorded the trial, or it was released."""

    number: int
    state: str
    told: tuple[float, ...] | None
    recorded: bool


def model_bytes_estimate(analysis: Analysis) -> int:
    """Size of the int8 TFLite file before export: one byte per weight, an int32 bias per output channel
    (batch-norm folds into it), and a flatbuffer overhead of about 300 bytes per layer plus 2 KB."""
    weights = sum(layer.weights for layer in analysis.layers)
    biases = sum(layer.out_channels for layer in analysis.layers if layer.bias or layer.batch_norm)
    return weights + 4 * biases + 300 * len(analysis.layers) + 2048


def num_classes_of(dataset: str, resolution: int | None) -> int:
    from nas_service.trainer.datasets import load_dataset

    return load_dataset(dataset, resolution or 32).num_classes


def constraint_values(limits: Constraints, c: Candidate) -> dict[str, float]:
    """Optuna constraint values (feasible when <= 0), relative to each limit the spec sets."""
    return {name: value / limit - 1.0 for name, value, limit in _checks(limits, c) if limit is not None}


def violations(limits: Constraints, c: Candidate) -> dict[str, object]:
    return {name: {"value": value, "limit": limit} for name, value, limit in _checks(limits, c)
            if limit is not None and value > limit}


LIMIT_UNITS = {"latency_ms": ("max_latency_ms", " ms"), "params": ("max_params", " parameters"),
               "model_bytes": ("max_model_bytes", " bytes")}


def _amount(name: str, value: float) -> str:
    unit = LIMIT_UNITS[name][1]
    return f"{value:.4g}{unit}" if name == "latency_ms" else f"{value:,.0f}{unit}"


def broken_text(violations: dict[str, object]) -> str:
    """Which constraints a candidate broke and by how much: `max_latency_ms 0.01 ms: 1.285 ms, 1.275 ms over
    (128.5x the limit)`, the infeasible trial's `error`."""
    parts = []
    for name, found in violations.items():
        if not isinstance(found, dict):
            continue
        value, limit = float(found["value"]), float(found["limit"])
        ratio = f"{value / limit:.3g}x the limit" if value >= 2 * limit else f"+{value / limit - 1:.1%}"
        parts.append(f"{LIMIT_UNITS[name][0]} {_amount(name, limit)}: {_amount(name, value)}, "
                     f"{_amount(name, value - limit)} over ({ratio})")
    return "broke " + "; ".join(parts)


def _checks(limits: Constraints, c: Candidate) -> list[tuple[str, float, float | None]]:
    return [("latency_ms", c.latency_ms, limits.max_latency_ms), ("params", c.params, limits.max_params),
            ("model_bytes", c.model_bytes_estimate, limits.max_model_bytes)]


def slot_scorer(spec: JobSpec, supernet: Checkpoints | None = None) -> Scorer:
    """The scorer of one slot: with several slots, real training runs in a process of the slot's own; a one-shot
    job's keeps its supernet in `supernet`."""
    if spec.training.mode == "oneshot":
        from nas_service.controller.oneshot import OneShotScorer

        return OneShotScorer(spec.space, supernet)
    if spec.training.scorer == "train" and spec.training.concurrency > 1:
        return ProcessTrainScorer(threads=max(1, len(os.sched_getaffinity(0)) // spec.training.concurrency))
    return make_scorer(spec.training.scorer)


class TrialObjective:
    """Optuna's objective for one slot of a job (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, spec: JobSpec, *, worker: str,
                 artifacts_dir: Path, store: ArtifactStore, scorer: Scorer | None = None,
                 interrupted: Callable[[], bool] = lambda: False) -> None:
        self.sessions, self.job_id, self.spec, self.worker = sessions, job_id, spec, worker
        self.interrupted = interrupted
        """True once the search gives up its trials in flight: they are released and re-queued, not failed."""
        self.artifacts_dir = artifacts_dir / f"job-{job_id}"
        """Scratch space for exports; the exported file is uploaded to `store`, then deleted here."""
        self.store = store
        self.space = load_space(spec.space)
        self.num_classes = num_classes_of(spec.dataset, spec.resolution)
        self.scorer = scorer or slot_scorer(spec, StoredCheckpoints(sessions, store, job_id,
                                                                    self.artifacts_dir / SUPERNET_DIR))
        self.trial_id = -1
        """Optuna's id of the trial in flight, until Optuna has recorded how it ended."""
        self.current: Candidate | None = None
        """The candidate of the trial in flight, once it exists."""
        self.outcome: Outcome | None = None
        """The last trial's, once it settled."""

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        self.current, self.outcome, self.trial_id = None, None, trial._trial_id
        try:
            attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
            with self.sessions() as session:  # failed_trial: set by Optuna's retry callback on a lost trial's copy
                origin = trial_records.start_trial(session, self.job_id, trial.number, worker=self.worker,
                                                   enqueued="fixed_params" in attrs,
                                                   retry_of=attrs.get("failed_trial"))
            return self._evaluate(trial, origin)
        except BaseException as exc:
            if is_connection_lost(exc) or self.interrupted():  # not the candidate's fault: re-queue it, as if
                reason = ("search interrupted mid-trial; re-queued" if self.interrupted()  # its worker had died
                          else "database connection lost mid-trial")
                retry_on_connection_loss(lambda: self._requeue(trial, reason), what=f"re-queueing trial {trial.number}")
                raise
            # With its candidate when one was made, so the failure is shown at the candidate's latency.
            self._settle(trial.number, self.current, "failed", error=f"{type(exc).__name__}: {exc}")
            raise

    def tell_again(self, study: optuna.Study) -> bool:
        """After Optuna lost the connection while telling the last trial's result: tell it once more (retried
        while the database is away), so the sampler learns what our tables already hold. False when there was
        no result to tell (the trial failed, or was cut short and re-queued)."""
        outcome = self.outcome
        if outcome is None or outcome.told is None:
            return False
        retry_on_connection_loss(lambda: study.tell(outcome.number, outcome.told, skip_if_finished=True),
                                 what=f"telling Optuna the result of trial {outcome.number}")
        return True

    def taken_back(self, study: optuna.Study) -> bool:
        """After Optuna refused to record the trial in flight: whether that is because Optuna holds it failed, its
        heartbeat having gone stale (the database was away, say) so that another worker failed and re-queued it
        (`stale_hook`, which also takes back any result recorded here). The late result is dropped, logged."""
        trial_id, self.trial_id = self.trial_id, -1
        if trial_id < 0:
            return False
        state = retry_on_connection_loss(lambda: study._storage.get_trial(trial_id).state,
                                         what=f"reading the state of Optuna trial {trial_id}")
        if state != optuna.trial.TrialState.FAIL:
            return False
        number = study._storage.get_trial_number_from_id(trial_id)
        log.warning("worker %s: trial %d was taken back (heartbeat stale) and re-queued; its late result is dropped",
                    self.worker, number)
        self.outcome = Outcome(number, "stale", None, False)
        return True

    def _requeue(self, trial: optuna.Trial, reason: str) -> None:
        with self.sessions() as session:
            released = job_queue.release_trial(session, self.job_id, trial.number, reason)
        if released:
            RETRY(trial.study, trial.study._storage.get_trial(trial._trial_id))

    def _evaluate(self, trial: optuna.Trial, origin: str) -> tuple[float, ...]:
        arch = self.space.sample(trial, num_classes=self.num_classes, resolution=self.spec.resolution)
        trial.set_user_attr("arch", encode(arch))
        trial.set_user_attr("origin", origin)  # initial (warm start) or sampler, as Optuna's own tools show it
        c = self.current = self._candidate(arch, origin)
        for name, value in constraint_values(self.spec.constraints, c).items():
            trial.set_constraint(name, value)
        if c.status in ("trained", "infeasible"):
            state = "infeasible" if c.status == "infeasible" else "stopped" if c.stopped_early else "complete"
            error = broken_text(c.violations) if state == "infeasible" else None
            return self._settle(trial.number, c, state, reused=True, error=error)
        if c.violations:
            self._set_status(c, "infeasible")
            return self._settle(trial.number, c, "infeasible", error=broken_text(c.violations))
        trained = self._train(c, arch, trial)
        trial.set_user_attr("stopped_early", c.stopped_early)
        return self._settle(trial.number, c, "stopped" if c.stopped_early else "complete", trained=trained)

    def _candidate(self, arch: ArchSpec, origin: str) -> Candidate:
        """The job's candidate row for `arch`, created with its analysis and latency if it is new."""
        text = encode(arch)
        with self.sessions() as session:
            found = trial_records.find_candidate(session, self.job_id, arch_hash(text))
            if found is not None:
                return found
            analysis = analyze(arch)
            latency = predict_latency(arch, self.spec.device)
            c = Candidate(job_id=self.job_id, arch=text, arch_hash=arch_hash(text), status="pending", origin=origin,
                          params=analysis.params, macs=analysis.macs, analysis=analysis.to_dict(),
                          model_bytes_estimate=model_bytes_estimate(analysis), latency_ms=latency.total_ms,
                          cpu_ms=latency.cpu_ms, latency_profile=latency.profile_version, latency=latency.detail,
                          fidelity="oneshot" if self.spec.training.mode == "oneshot" else "standalone")
            c.violations = violations(self.spec.constraints, c)
            return trial_records.add_candidate(session, c)

    def _set_status(self, c: Candidate, status: str) -> None:
        with self.sessions() as session:
            trial_records.set_candidate_status(session, c.id, status)
        c.status = status

    def _train(self, c: Candidate, arch: ArchSpec, trial: optuna.Trial) -> dict[str, object]:
        """Train the candidate (asking the front each epoch whether to go on) and return its result's fields,
        also set on `c`."""
        self._set_status(c, "training")
        curve: list[float] = []
        use_rule = self.spec.training.early_stopping and self.spec.mode == "pareto"

        def keep_going(epoch: int, accuracy: float) -> bool:
            if self.interrupted():
                raise TrialInterrupted(f"interrupted after epoch {epoch}")
            curve.append(accuracy)
            return not use_rule or not early_stop.should_stop(
                curve, self.spec.training.epochs, c.latency_ms, self._front_2d(), self.num_classes,
                grace=self.spec.training.early_stopping_grace)

        try:
            score = self.scorer.score(arch, dataset=self.spec.dataset, training=self.spec.training,
                                      seed=self.spec.seed, keep_going=keep_going, artifacts_dir=self.artifacts_dir)
            model = self._upload(Path(score.tflite_path), trial) if score.tflite_path else None
        except BaseException:
            self._set_status(c, "pending" if self.interrupted() else "failed")
            raise
        result: dict[str, object] = {
            "status": "trained", "accuracy": score.accuracy, "int8_accuracy": score.int8_accuracy,
            "epochs_trained": score.epochs, "stopped_early": score.stopped_early, "curve": score.curve,
            "train_seconds": score.seconds, "model_bytes": score.model_bytes,
            "tflite_artifact": model, "fidelity": score.fidelity}
        for key, value in result.items():
            setattr(c, key, value)
        return result

    def _upload(self, path: Path, trial: optuna.Trial) -> str:
        """The exported file into the artifact store, attached to its Optuna trial; the local copy goes."""
        try:
            with self.sessions() as session:
                return artifacts.save_model(session, self.store, path, trial=trial, job_id=self.job_id)
        finally:
            path.unlink(missing_ok=True)

    def _front_2d(self) -> list[tuple[float, float]]:
        with self.sessions() as session:
            return [(float(m.accuracy or 0.0), float(m.latency_ms))
                    for m in trial_records.front_members(session, self.job_id)]

    def _objectives(self, c: Candidate) -> tuple[float, ...]:
        acc = float(c.accuracy or 0.0) if c.status == "trained" else 0.0
        by_name = {"accuracy": acc, "latency_ms": c.latency_ms, "params": float(c.params),
                   "model_bytes": float(c.model_bytes_estimate)}
        return tuple(by_name[o] for o in self.spec.objectives)

    def _settle(self, number: int, c: Candidate | None, state: str, *, reused: bool = False,
                trained: dict[str, object] | None = None, error: str | None = None) -> tuple[float, ...]:
        """Record the trial's outcome (`state`: complete, stopped, infeasible or failed), the candidate's result
        and the front in one transaction, retried while the database is away, and return Optuna's values.
        Only complete trials can join the front: a stopped one's accuracy is that of a partial training."""
        values = self._objectives(c) if c is not None else ()
        recorded = retry_on_connection_loss(lambda: self._record(number, c, state, values, reused, trained, error),
                                            what=f"recording trial {number}")
        told: tuple[float, ...] | None = None
        if state != "failed" and c is not None:
            target = self.spec.target if self.spec.mode == "target" else None
            told = (reward(values[0], c.latency_ms, target),) if target is not None else values
        self.outcome = Outcome(number, state, told, recorded)
        return told or ()

    def _record(self, number: int, c: Candidate | None, state: str, values: tuple[float, ...], reused: bool,
                trained: dict[str, object] | None, error: str | None) -> bool:
        """The transaction of `_settle`; False (and nothing written) when the trial is no longer running."""
        fields: dict[str, object] = {"state": state, "reused": reused, "error": error}
        if c is not None:
            named = dict(zip(self.spec.objectives, values, strict=True))
            fields.update(candidate_id=c.id, accuracy=named["accuracy"], latency_ms=c.latency_ms, params=c.params,
                          model_bytes=c.model_bytes or c.model_bytes_estimate, fidelity=c.fidelity or "standalone")
            if self.spec.target is not None:
                fields["reward"] = reward(named["accuracy"], c.latency_ms, self.spec.target)
        with self.sessions() as session:
            if not trial_records.settle_trial(session, self.job_id, number, fields):
                session.rollback()
                return False
            if trained is not None and c is not None:
                trial_records.save_training(session, c.id, trained)
                if state == "complete" and not c.violations:
                    self._join_front(session, c, values)
            session.commit()
        return True

    def _join_front(self, session: Session, c: Candidate, values: tuple[float, ...]) -> None:
        members = trial_records.front_members(session, self.job_id)
        front = pareto.Front(pareto.Point(m.id, self._objectives(m)) for m in members)
        joined, removed = front.add(pareto.Point(c.id, values))
        if joined:
            trial_records.move_front(session, c.id, [int(str(p.key)) for p in removed])

