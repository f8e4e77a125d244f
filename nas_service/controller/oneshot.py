"""One-shot scoring (`training.mode: oneshot`): the job's supernet scores candidates, its front is then confirmed.

`OneShotScorer` is a scorer like the others: on first use it trains the job's supernet (or resumes it from the
last epoch checkpointed in the artifact store, so a worker killed while training it loses at most an epoch and
any machine may resume it; the job's supernet lock lets one worker train while the others, on any machine, wait
and then load it: `supernet_store`), then scores each candidate by its subnet's held-out top-1 with inherited
weights after batch-norm recalibration (`fidelity: oneshot`), in well under a second and without a new trace.

`confirm_front` runs when the search is over: each member of the one-shot front is claimed by one worker (a
conditional UPDATE), trained from scratch by today's trainer and exported to int8, and recorded as `fidelity:
standalone` with its one-shot accuracy beside; once none is left the job's front is rebuilt from the confirmed
candidates, so `front`, `best` and `knee` serve the confirmed front.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_service.controller.scoring import EpochCheck, Score, TrainScorer
from nas_service.controller.supernet_store import SUPERNET_DIR, Checkpoints, LocalCheckpoints
from nas_service.spec import JobSpec, Training
from search_spaces import ArchSpec, decode, load_space

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore
    from sqlalchemy.orm import Session, sessionmaker

    from nas_service.trainer.datasets import Dataset
    from nas_service.trainer.supernet import Supernet

log = logging.getLogger(__name__)
CONFIRMATION_STALE_S = 900.0
"""A front member whose confirmation has reported no epoch for this long is taken over by another worker (its
worker died); an epoch of a default-job candidate takes well under a minute on 2 cores."""


def job_data(dataset: str, training: Training, resolution: int) -> Dataset:
    from nas_service.trainer.datasets import load_dataset

    data = load_dataset(dataset, resolution)
    return data.subset(training.train_images) if training.train_images else data


def train_supernet(place: Checkpoints | Path, space_name: str, data: Dataset, training: Training,
                   seed: int) -> Supernet:
    """The job's supernet after `training.supernet_epochs`, trained here from its newest checkpoint in `place` (the
    artifact store, or a folder) if it is not done, under `place`'s lock (others wait, then load it); each epoch
    is checkpointed, and `latest.json`'s `runs` lists the epoch each run started from."""
    from nas_service.trainer.supernet import Supernet
    from nas_service.trainer.training import KERAS_STATE

    checkpoints = LocalCheckpoints(place) if isinstance(place, Path) else place
    with checkpoints.lock():
        net = Supernet(load_space(space_name), num_classes=data.num_classes, resolution=data.resolution, seed=seed)
        net.configure(sandwich_random=training.sandwich_random)
        meta = checkpoints.load(net) or {}
        runs: list[dict[str, Any]] = list(meta.get("runs", []))
        losses: list[float] = list(meta.get("losses", []))
        if int(net.epoch.numpy()) < training.supernet_epochs:
            runs.append({"from_epoch": int(net.epoch.numpy()), "pid": os.getpid()})
            with KERAS_STATE.without_graph_optimizer():
                while int(net.epoch.numpy()) < training.supernet_epochs:
                    start = time.perf_counter()
                    losses.append(round(net.train_epoch(data.x_train, data.y_train, batch_size=training.batch_size,
                                                        epochs=training.supernet_epochs, seed=seed), 5))
                    checkpoints.save(net, {"runs": runs, "losses": losses})
                    log.info("supernet epoch %d of %d: loss %.4f, %.1f s", int(net.epoch.numpy()),
                             training.supernet_epochs, losses[-1], time.perf_counter() - start)
    return net


def calibration_batches(data: Dataset, training: Training) -> list[Any]:
    """The training batches every subnet's batch-norm statistics are recalibrated on (the same for all)."""
    b = training.batch_size
    return [data.x_train[i * b:(i + 1) * b] for i in range(min(training.calibration_batches, len(data.x_train) // b))]


class OneShotScorer:
    """The `oneshot` scorer of a slot (see the module docstring)."""

    name = "oneshot"

    def __init__(self, space: str, checkpoints: Checkpoints | None = None) -> None:
        self.space = space
        self.checkpoints = checkpoints
        """The job's supernet in the artifact store (`StoredCheckpoints`); None: a folder in `artifacts_dir`."""
        self._lock = threading.Lock()
        self._net: Supernet | None = None
        self._data: Dataset | None = None

    def supernet(self, *, dataset: str, training: Training, seed: int, space: str, resolution: int,
                 artifacts_dir: Path) -> tuple[Supernet, Dataset]:
        """The trained supernet of the job (trained or resumed on first use) and its data."""
        with self._lock:
            if self._net is None or self._data is None:
                data = job_data(dataset, training, resolution)
                place = self.checkpoints or artifacts_dir / SUPERNET_DIR
                self._net = train_supernet(place, space, data, training, seed)
                self._data = data
            return self._net, self._data

    def score(self, arch: ArchSpec, *, dataset: str, training: Training, seed: int, keep_going: EpochCheck,
              artifacts_dir: Path) -> Score:
        net, data = self.supernet(dataset=dataset, training=training, seed=seed, space=self.space,
                                  resolution=arch.resolution, artifacts_dir=artifacts_dir)
        start = time.perf_counter()
        calibration = calibration_batches(data, training)
        n = training.score_images or len(data.x_test)
        with self._lock:
            accuracy = net.accuracy(arch.with_classes(data.num_classes), calibration, data.x_test[:n],
                                    data.y_test[:n])
        return Score(accuracy=round(accuracy, 5), epochs=0, seconds=round(time.perf_counter() - start, 3),
                     fidelity="oneshot")


# --- confirming the front -----------------------------------------------------------------------------------


def confirm_front(sessions: sessionmaker[Session], job_id: int, spec: JobSpec, artifacts_root: Path,
                  store: ArtifactStore) -> bool:
    """Train from scratch every member of the one-shot front that no worker has claimed yet (its int8 model into
    the artifact store, attached to the Optuna trial that scored it), then rebuild the front from the confirmed
    candidates once none is left; True when the whole front is confirmed."""
    from nas_service.controller import pareto
    from nas_service.db import artifacts, trial_records

    artifacts_dir = artifacts_root / f"job-{job_id}"

    scorer = TrainScorer()
    while True:
        with sessions() as session:
            claimed = trial_records.claim_confirmation(session, job_id, CONFIRMATION_STALE_S)
        if claimed is None:
            break
        candidate_id, arch_text = claimed
        arch = decode(arch_text)

        def alive(epoch: int, accuracy: float, candidate_id: int = candidate_id) -> bool:
            with sessions() as session:
                trial_records.touch_confirmation(session, candidate_id)
            return True  # a front member is trained to the end

        try:
            score = scorer.score(arch, dataset=spec.dataset, training=spec.training, seed=spec.seed,
                                 keep_going=alive, artifacts_dir=artifacts_dir)
        except BaseException:
            with sessions() as session:
                trial_records.release_confirmation(session, candidate_id)
            raise
        with sessions() as session:
            model = None
            if score.tflite_path:
                path = Path(score.tflite_path)
                with open(path, "rb") as body:
                    model = artifacts.save_stream(session, store, body, kind="model", filename=path.name,
                                                  job_id=job_id).id
                path.unlink(missing_ok=True)
                artifacts.attach_to_trial(session, model, path.name, job_id=job_id, candidate_id=candidate_id)
            trial_records.record_confirmation(session, candidate_id, {
                "accuracy": score.accuracy, "int8_accuracy": score.int8_accuracy, "epochs_trained": score.epochs,
                "curve": score.curve, "train_seconds": score.seconds, "tflite_artifact": model,
                "model_bytes": score.model_bytes})
    def choose(confirmed: list[Any]) -> set[int]:
        front = pareto.Front(pareto.Point(c.id, objectives_of(spec, c)) for c in confirmed if not c.violations)
        return {int(str(p.key)) for p in front.points}

    with sessions() as session:
        return trial_records.finish_confirmation(session, job_id, choose)


def objectives_of(spec: JobSpec, c: Any) -> tuple[float, ...]:
    """A candidate's objective values as the job's front compares them."""
    by_name = {"accuracy": float(c.accuracy or 0.0), "latency_ms": c.latency_ms, "params": float(c.params),
               "model_bytes": float(c.model_bytes_estimate)}
    return tuple(by_name[o] for o in spec.objectives)


def rank_correlations(a: list[float], b: list[float]) -> tuple[float, float]:
    """Spearman's and Kendall's coefficients of two lists of accuracies (the bench's trust figures)."""
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)

