"""Proxy training of a candidate: a few epochs on real data, reporting held-out top-1 after every epoch.

The defaults are chosen for small data and few epochs, where the usual ImageNet recipe fails
(keras.applications' MobileNetV2 reaches 8% on digits after 5 epochs): batch-norm momentum 0.8 so
that the moving statistics used at test time follow the weights within a few steps (with Keras's
0.99 they lag by hundreds of steps and held-out accuracy after the first epochs is chance, which
would blind early stopping), AdamW with a one-epoch linear warmup and a cosine decay to zero over
the budget (SGD with Nesterov momentum diverges on deep candidates at 32 px), no label smoothing
and no augmentation. Accuracy is always measured with batch-norm in inference mode, as deployed.

The search calls `train` many times in one process: the dataset is loaded once (cached in
`datasets`), the Keras session is cleared before every candidate, and the input pipeline is a
cached, prefetched `tf.data` pipeline of uint8 images scaled on the fly.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nas_service.trainer.datasets import Dataset, DatasetError, load_dataset
from search_spaces.arch import ArchSpec
from search_spaces.grammar import encode

if TYPE_CHECKING:
    import keras

EpochHook = Callable[[int, float], bool | None]
"""`on_epoch(epoch, accuracy)`: epoch counts from 1, accuracy is held-out top-1 in [0, 1].
Return False to stop training now; the result then says `stopped_early`. An exception raised by the
hook (such as the controller's pruning signal) propagates out of `train` after cleanup."""


class TrainingError(ValueError):
    """A budget or setting that cannot be trained with; the message names it and what was expected."""


@dataclass(frozen=True)
class Budget:
    """How long to train: `epochs`, wall `seconds`, or both (whichever ends first).

    Both are checked at the end of each epoch. Under a seconds budget the number of epochs is
    planned from the measured epoch time (the first epoch's includes tracing) and the
    learning-rate schedule follows that plan, so the result depends on the machine's speed; an
    epochs budget alone is deterministic under a seed.
    """

    epochs: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is None and self.seconds is None:
            raise TrainingError("training budget has neither epochs nor seconds: expected at least one")
        if self.epochs is not None and not 1 <= self.epochs <= 10_000:
            raise TrainingError(f"training budget of {self.epochs} epochs is out of range: expected 1..10000")
        if self.seconds is not None and not self.seconds > 0:
            raise TrainingError(f"training budget of {self.seconds} seconds is out of range: expected > 0")


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe; the defaults suit small candidates on small datasets."""

    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float | None = None
    """Peak rate; None picks 4e-3 for AdamW and 0.05 for SGD (Nesterov momentum 0.9)."""
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    bn_momentum: float = 0.8
    dropout: float = 0.1
    augment: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise TrainingError(f"optimizer {self.optimizer!r} is unknown: expected 'adamw' or 'sgd'")
        if not 1 <= self.batch_size <= 4096:
            raise TrainingError(f"batch size {self.batch_size} is out of range: expected 1..4096")

    @property
    def peak_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 0.05 if self.optimizer == "sgd" else 4e-3


@dataclass(frozen=True)
class TrainResult:
    """What one training run measured. `accuracy` is held-out top-1 after the last epoch run."""

    arch: str
    dataset: str
    accuracy: float
    epochs: int
    seconds: float
    loss_curve: tuple[float, ...]
    accuracy_curve: tuple[float, ...]
    stopped_early: bool
    images_per_second: float
    seed: int
    config: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loss_curve": list(self.loss_curve), "accuracy_curve": list(self.accuracy_curve)}


def train(arch: ArchSpec, dataset: str | Dataset, budget: Budget, *, seed: int = 0,
          config: TrainConfig | None = None, on_epoch: EpochHook | None = None) -> TrainResult:
    """Train `arch` on `dataset` within `budget` and return its held-out top-1 and curves.

    The classifier is sized to the dataset's classes (the arch's class count is replaced), and the
    input resolution is the arch's. Call it as often as needed in one process.
    """
    with KERAS_STATE.candidate():
        _, result = fit(arch, dataset, budget, seed=seed, config=config, on_epoch=on_epoch)
    return result


def fit(arch: ArchSpec, dataset: str | Dataset, budget: Budget, *, seed: int = 0, config: TrainConfig | None = None,
        on_epoch: EpochHook | None = None) -> tuple[keras.Model, TrainResult]:
    """Like `train`, but also return the trained Keras model. Wrap the call and the model's later use (export)
    in `KERAS_STATE.candidate()`, so that no other thread clears Keras's state before the model is done with."""
    import keras

    from search_spaces.keras_builder import build_keras

    config = config or TrainConfig()
    data = resolve_dataset(dataset, arch.resolution)
    arch = arch.with_classes(data.num_classes)
    steps_per_epoch = max(1, len(data.x_train) // config.batch_size)
    if len(data.x_train) < config.batch_size:
        raise TrainingError(f"dataset {data.name!r} has {len(data.x_train)} training images, fewer than the batch "
                            f"size {config.batch_size}: expected a smaller batch size")

    with KERAS_STATE.candidate():
        with KERAS_STATE.seeded(seed):
            model = build_keras(arch, dropout=config.dropout, bn_momentum=config.bn_momentum)
        schedule = _OneCycle.create(config.peak_learning_rate, steps_per_epoch, config.warmup_epochs,
                                    budget.epochs)
        model.compile(optimizer=_optimizer(config, schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=False)
        train_ds, test_ds = _pipelines(data, config, seed)
        monitor = _monitor(budget, steps_per_epoch, schedule, on_epoch)
        start = time.perf_counter()
        with KERAS_STATE.without_graph_optimizer():
            model.fit(train_ds, validation_data=test_ds, epochs=budget.epochs or 10_000, callbacks=[monitor],
                      verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    epochs = len(monitor.accuracies)
    steady = monitor.train_seconds[1:] or monitor.train_seconds  # the first epoch also traces the step
    images_per_second = len(steady) * steps_per_epoch * config.batch_size / max(sum(steady), 1e-9)
    return model, TrainResult(
        arch=encode(arch), dataset=data.name, accuracy=monitor.accuracies[-1] if epochs else 0.0, epochs=epochs,
        seconds=round(seconds, 3), loss_curve=tuple(monitor.losses), accuracy_curve=tuple(monitor.accuracies),
        stopped_early=monitor.stopped_by_hook, images_per_second=round(images_per_second, 1),
        seed=seed, config=config)


class _KerasProcessState:
    """Process-wide state that candidates trained side by side (search slots are threads) must share.

    `keras.backend.clear_session()` replaces Keras's global state for every thread, so it runs only when no
    other candidate is being built, trained or exported. TensorFlow's graph optimizer (Grappler) is a process
    option: it stays off while any candidate trains. Searches train small candidates for a few short epochs,
    where the first step (tracing plus Grappler's rewrite of the training graph) costs as much as the epochs:
    on 2 cores a 45-layer candidate's first step takes 20.5 s with Grappler and 13.7 s without, its later
    steps 209 and 200 ms.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self._candidates = 0
        self._fits = 0
        self._options: dict[str, Any] = {}

    @contextlib.contextmanager
    def candidate(self) -> Iterator[None]:
        """Around everything done with one candidate's Keras model: a fresh Keras state when it is alone."""
        import keras

        with self._lock:
            if self._candidates == 0:
                keras.backend.clear_session()
            self._candidates += 1
        try:
            yield
        finally:
            with self._lock:
                self._candidates -= 1
                if self._candidates == 0:
                    keras.backend.clear_session()

    @contextlib.contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """Around building a model: Keras draws initial weights and dropout seeds from process-wide random state,
        so candidates are seeded and built one at a time, and one built beside others starts where it would alone."""
        with self._building:
            _seed_everything(seed)
            yield

    @contextlib.contextmanager
    def without_graph_optimizer(self) -> Iterator[None]:
        """Around `model.fit`: Grappler off while any fit runs, restored (for export) after the last."""
        import tensorflow as tf

        with self._lock:
            if self._fits == 0:
                self._options = tf.config.optimizer.get_experimental_options()
                tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
            self._fits += 1
        try:
            yield
        finally:
            with self._lock:
                self._fits -= 1
                if self._fits == 0:
                    tf.config.optimizer.set_experimental_options({**self._options, "disable_meta_optimizer": False})


KERAS_STATE = _KerasProcessState()


def scale_images(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to the model's input range [-1, 1] (what training, export and evaluation all use)."""
    return (np.asarray(x, np.float32) / 127.5 - 1.0).astype(np.float32)


def resolve_dataset(dataset: str | Dataset, resolution: int) -> Dataset:
    """A dataset name or an already loaded dataset, at `resolution`."""
    if isinstance(dataset, Dataset):
        return dataset.resized(resolution)
    if not isinstance(dataset, str):
        raise DatasetError(f"dataset {dataset!r} is neither a name nor a Dataset")
    return load_dataset(dataset, resolution)


def _seed_everything(seed: int) -> None:
    """Python, numpy and TensorFlow seeds, and deterministic TF kernels (process-wide, set once)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if not _seed_everything.__dict__.get("deterministic"):
        tf.config.experimental.enable_op_determinism()
        _seed_everything.__dict__["deterministic"] = True


def _pipelines(data: Dataset, config: TrainConfig, seed: int) -> tuple[Any, Any]:
    """Shuffled training batches (full batches only: one trace, stable batch-norm) and test batches."""
    import tensorflow as tf

    def scale(x: Any, y: Any) -> tuple[Any, Any]:
        return tf.cast(x, tf.float32) / 127.5 - 1.0, y

    train = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache()
    train = train.shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
    train = train.batch(config.batch_size, drop_remainder=True)
    if config.augment:
        train = train.map(_augment_fn(seed))
    train = train.map(scale).prefetch(2)  # whole batches: one map call per step
    eval_batch = len(data.x_test) if len(data.x_test) <= 1024 else 512  # one trace for small test sets
    test = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)).batch(eval_batch).map(scale).cache()
    return train.with_options(_untuned()), test.prefetch(2).with_options(_untuned())


def _untuned() -> Any:
    """tf.data options without autotuning. Deleting an autotuned iterator (Keras does at every epoch's end) waits
    for the autotuner's thread to wake from its sleep, with both cores idle: 0 to 15 s per epoch and 15% of a
    default-job candidate's training, measured on 2 cores. These pipelines are a cached array sliced into batches
    and need no tuning."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _augment_fn(seed: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    """Random shifts of up to 1/8 of the image (pad and crop); no flips, which would change digits."""
    import tensorflow as tf

    def augment(x: Any, y: Any) -> tuple[Any, Any]:
        size = x.shape[1]
        pad = max(1, size // 8)
        padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
        return tf.image.random_crop(padded, tf.shape(x), seed=seed), y

    return augment


def _optimizer(config: TrainConfig, schedule: Any) -> Any:
    import keras

    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)


class _OneCycle:
    """Linear warmup to the peak rate, then cosine decay to zero at `total_steps`, a variable the monitor
    moves when a seconds budget re-plans the number of epochs (no retracing: it is read inside the step)."""

    @staticmethod
    def create(peak: float, steps_per_epoch: int, warmup_epochs: float, epochs: int | None) -> Any:
        import keras

        class OneCycle(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
            def __init__(self) -> None:
                total = (epochs or 10_000) * steps_per_epoch
                warmup = max(1, round(warmup_epochs * steps_per_epoch))
                self.warmup = float(min(warmup, max(1, total // 4)) if epochs else warmup)
                self.total_steps = keras.Variable(float(total), trainable=False, name="total_steps")

            def __call__(self, step: Any) -> Any:
                ops = keras.ops
                step = ops.cast(step, "float32")
                warm = peak * (step + 1.0) / self.warmup
                span = ops.maximum(self.total_steps - self.warmup, 1.0)
                progress = ops.clip((step - self.warmup) / span, 0.0, 1.0)
                decay = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
                return ops.where(step < self.warmup, warm, decay)

            def get_config(self) -> dict[str, Any]:
                return {"peak": peak, "warmup": self.warmup}

        return OneCycle()


def _monitor(budget: Budget, steps_per_epoch: int, schedule: Any, on_epoch: EpochHook | None) -> Any:
    """A Keras callback that records the curves, calls the epoch hook and enforces the seconds budget."""
    import keras

    class Monitor(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []
            self.accuracies: list[float] = []
            self.epoch_seconds: list[float] = []
            self.train_seconds: list[float] = []
            self.stopped_by_hook = False
            self.start = self.epoch_start = self.fit_start = 0.0

        def on_train_begin(self, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_start = self.fit_start = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:  # the epoch's training steps are over
            self.train_seconds.append(time.perf_counter() - self.fit_start)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            self.epoch_seconds.append(now - self.epoch_start)
            logs = logs or {}
            self.losses.append(round(float(logs.get("loss", float("nan"))), 5))
            accuracy = float(logs.get("val_accuracy", 0.0))
            self.accuracies.append(round(accuracy, 5))
            if on_epoch is not None and on_epoch(epoch + 1, accuracy) is False:
                self.stopped_by_hook = True
                self.model.stop_training = True
            elif budget.seconds is not None:
                self.replan(epoch + 1, budget.seconds - (now - self.start))

        def replan(self, done: int, seconds_left: float) -> None:
            """Fit the remaining epochs into the seconds left; the first epoch's time includes tracing."""
            epoch_time = min(self.epoch_seconds[1:] or self.epoch_seconds)
            planned = done + max(0, int(seconds_left // max(epoch_time, 1e-6)))
            if budget.epochs is not None:
                planned = min(planned, budget.epochs)
            if planned <= done:
                self.model.stop_training = True
            else:
                schedule.total_steps.assign(float(planned * steps_per_epoch))

    return Monitor()
