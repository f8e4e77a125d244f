"""A weight-sharing supernet of a search space: every member is a subnet that inherits its weights.

Each block position of a stage holds an `er` branch and an `ir` branch at the stage's largest kernel and
widths. A member selects, by tensors only (`Supernet.encode`): per stage the branch, the depth (positions past
it are skipped), the kernel (a centre crop of the largest, as a mask on its border), and per layer the widths
(the leading channels, as channel masks applied after every batch-norm). A masked kernel with 'same' padding
computes what the cropped kernel does, and a conv fed zeros in its trailing input channels computes what the
sliced kernel does, so `to_keras` (sliced, cropped weights in `build_keras`'s model) gives the same outputs.

One traced training step (per subnet of the sandwich: its gradients are summed, then one AdamW step) serves
every subnet. The sandwich is the largest, the smallest and `n` random members (BigNAS's rule; its ends alternate
between the block types, so both branches train at both ends of their widths); the largest learns from the
labels and the others from its predictions (in-place distillation). Batch-norm statistics are not kept while
training: before a subnet is evaluated they are recalibrated on a few training batches (`calibrate`), as BigNAS
does.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search_spaces.arch import ArchSpec, make_divisible
from search_spaces.space import SearchSpace

if TYPE_CHECKING:
    import keras

EPSILON = 1e-3
"""Batch-norm epsilon: Keras's default, so that `to_keras` models compute the same."""

Encoding = dict[str, np.int32]
"""A subnet as the supernet's traced functions take it: one integer per choice (see `Supernet.encode`)."""


class SupernetError(ValueError):
    """A space or architecture the supernet cannot hold; the message names the field and what is expected."""


@dataclass(frozen=True)
class Position:
    """One block position of the supernet: stage `stage` (from 1), repeat `index` (from 1)."""

    stage: int
    index: int
    stride: int
    kernel: int
    cin: int
    mid: int
    cout: int

    @property
    def key(self) -> str:
        return f"s{self.stage}.b{self.index}"


def check_space(space: SearchSpace) -> None:
    """Raise `SupernetError` naming the field when the supernet cannot hold `space` (no TensorFlow needed)."""
    c, name = space.choices(), space.name
    fixed = ["stem_kernel", "stem_stride", "stem_act", "head_fc", "head_act"]
    fixed += [f"s{i}_{f}" for i in range(1, space.num_stages + 1) for f in ("stride", "act", "se")]
    for field in fixed:
        if len(c[field]) != 1:
            raise SupernetError(f"space {name!r}: {field} has choices {list(c[field])}: the supernet needs it "
                                "fixed (one value)")
    acts = {c["stem_act"][0], c["head_act"][0]} | {c[f"s{i}_act"][0] for i in range(1, space.num_stages + 1)}
    if acts != {"relu"}:
        raise SupernetError(f"space {name!r}: activations {sorted(map(str, acts))}: the supernet holds relu only")
    for i in range(1, space.num_stages + 1):
        if not set(c[f"s{i}_type"]) <= {"er", "ir"} or c[f"s{i}_se"][0] != 0:
            raise SupernetError(f"space {name!r}: stage {i}: types {list(c[f's{i}_type'])}, se "
                                f"{c[f's{i}_se'][0]}: the supernet holds er and ir blocks without squeeze-excite")
    if c["head_fc"][0] != 0 or 0 in c["head_width"]:
        raise SupernetError(f"space {name!r}: head: the supernet needs a head conv (head_width > 0) and no fc")


class Supernet:
    """The supernet of `space` at a fixed `resolution` for `num_classes` (see the module docstring)."""

    def __init__(self, space: SearchSpace, *, num_classes: int, resolution: int, seed: int = 0) -> None:
        import tensorflow as tf

        self.space, self.num_classes, self.resolution = space, num_classes, resolution
        self.choices = space.choices()
        check_space(space)
        c = self.choices
        self.stem_kernel, self.stem_stride = int(c["stem_kernel"][0]), int(c["stem_stride"][0])
        self.act = str(c["stem_act"][0])
        self.stem_width = int(max(c["stem_width"]))
        self.positions: list[Position] = []
        cin = self.stem_width
        for i in range(1, space.num_stages + 1):
            width, emax = int(max(c[f"s{i}_width"])), float(max(c[f"s{i}_expansion"]))
            for j in range(1, int(max(c[f"s{i}_depth"])) + 1):
                block_in = cin if j == 1 else width
                self.positions.append(Position(i, j, int(c[f"s{i}_stride"][0]) if j == 1 else 1,
                                               int(max(c[f"s{i}_kernel"])), block_in,
                                               max(block_in, make_divisible(block_in * emax)), width))
            cin = width
        self.last_width = cin
        self.head_width = int(max(c["head_width"]))
        rng = np.random.default_rng(seed)
        self.weights: dict[str, Any] = {}
        self._conv("stem", (self.stem_kernel, self.stem_kernel, 3, self.stem_width), rng)
        for p in self.positions:
            self._conv(f"{p.key}.er.expand", (p.kernel, p.kernel, p.cin, p.mid), rng)
            self._conv(f"{p.key}.er.project", (1, 1, p.mid, p.cout), rng)
            self._conv(f"{p.key}.ir.expand", (1, 1, p.cin, p.mid), rng)
            self._conv(f"{p.key}.ir.dw", (p.kernel, p.kernel, p.mid, 1), rng, fan_in=p.kernel * p.kernel)
            self._conv(f"{p.key}.ir.project", (1, 1, p.mid, p.cout), rng)
        self._conv("head.conv", (1, 1, self.last_width, self.head_width), rng)
        limit = math.sqrt(6.0 / (self.head_width + num_classes))
        self.weights["classifier.kernel"] = tf.Variable(
            rng.uniform(-limit, limit, (self.head_width, num_classes)).astype(np.float32), name="classifier.kernel")
        self.weights["classifier.bias"] = tf.Variable(np.zeros(num_classes, np.float32), name="classifier.bias")
        self.trainable = [v for k, v in self.weights.items() if not k.endswith((".mean", ".var"))]
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._calibration_weight = tf.Variable(1.0, trainable=False, name="calibration_weight")
        self._optimizer: _AdamW | None = None
        self._functions: dict[str, Any] = {}

    # --- the space -------------------------------------------------------------------------------------------

    def members(self, kind: str, rng: np.random.Generator | None = None, block_type: str | None = None) -> ArchSpec:
        """The `largest` member (widest, deepest; er unless `block_type` says), the `smallest` (ir unless
        `block_type` says) or a `random` one (each parameter uniform, from `rng`)."""
        params: dict[str, Any] = {}
        for name in self.space.param_names():
            if name == "resolution":
                continue
            values = list(self.choices[name])
            if kind == "random":
                assert rng is not None
                params[name] = values[int(rng.integers(len(values)))]
            elif name.endswith("_type"):
                wanted = block_type or ("er" if kind == "largest" else "ir")
                params[name] = wanted if wanted in values else values[0]
            else:
                params[name] = max(values) if kind == "largest" else min(values)  # type: ignore[type-var]
        return self.space.build(params, num_classes=self.num_classes, resolution=self.resolution)

    def encode(self, arch: ArchSpec) -> Encoding:
        """The integers that select `arch` (a member of the space at this resolution) in the supernet."""
        if not self.space.contains(arch, resolution=self.resolution):
            raise SupernetError(f"architecture is not a member of space {self.space.name!r} at "
                                f"{self.resolution} px: expected one of its members")
        enc: Encoding = {"stem": np.int32(arch.stem.out_channels)}
        cin = arch.stem.out_channels
        for p in self.positions:
            block = arch.stages[p.stage - 1][0]
            kin = cin if p.index == 1 else block.out_channels
            mid = block.mid_channels(kin)
            enc.update({
                f"{p.key}.active": np.int32(p.index <= block.repeats), f"{p.key}.ir": np.int32(block.type == "ir"),
                f"{p.key}.expand": np.int32(mid != kin),
                f"{p.key}.residual": np.int32(block.has_residual(kin, p.stride)),
                f"{p.key}.kernel": np.int32(block.kernel), f"{p.key}.mid": np.int32(mid),
                f"{p.key}.out": np.int32(block.out_channels)})
            if p.index == 1:
                cin = block.out_channels
        enc["head"] = np.int32(arch.head.conv_channels)
        return enc

    def signature(self) -> dict[str, Any]:
        import tensorflow as tf

        return {k: tf.TensorSpec((), tf.int32, name=k.replace(".", "_"))
                for k in self.encode(self.members("largest"))}

    # --- the forward pass: weights sliced by the encoding's integers (shapes known only when run) -------------

    def _conv(self, name: str, shape: tuple[int, ...], rng: np.random.Generator, fan_in: int | None = None) -> None:
        import tensorflow as tf

        fan = fan_in or int(np.prod(shape[:-1]))
        self.weights[f"{name}.kernel"] = tf.Variable(
            (rng.standard_normal(shape) * math.sqrt(2.0 / fan)).astype(np.float32), name=f"{name}.kernel")
        channels = shape[-2] if name.endswith(".dw") else shape[-1]
        for suffix, value in (("gamma", 1.0), ("beta", 0.0), ("mean", 0.0), ("var", 1.0)):
            self.weights[f"{name}.{suffix}"] = tf.Variable(np.full(channels, value, np.float32),
                                                           name=f"{name}.{suffix}",
                                                           trainable=suffix in ("gamma", "beta"))

    def _bn(self, x: Any, name: str, mode: str, act: bool) -> Any:
        import tensorflow as tf

        w = self.weights
        c = tf.shape(x)[-1]
        if mode == "infer":
            mean, var = w[f"{name}.mean"][:c], w[f"{name}.var"][:c]
        else:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])
            if mode == "calibrate":  # a running average over the calibration batches, in the leading channels
                f = self._calibration_weight
                for stat, value in ((f"{name}.mean", mean), (f"{name}.var", var)):
                    old = w[stat][:c]
                    w[stat].assign(tf.concat([(1.0 - f) * old + f * value, w[stat][c:]], 0))
        x = tf.nn.batch_normalization(x, mean, var, w[f"{name}.beta"][:c], w[f"{name}.gamma"][:c], EPSILON)
        return tf.nn.relu(x) if act else x

    def _conv_bn(self, x: Any, name: str, stride: int, mode: str, cout: Any, act: bool = True,
                 kernel_size: Any = None) -> Any:
        import tensorflow as tf

        kernel = self.weights[f"{name}.kernel"]
        full = kernel.shape[0]
        k = full if kernel_size is None else kernel_size
        b = (full - k) // 2
        cin = tf.shape(x)[-1]
        if name.endswith(".dw"):
            kernel = tf.slice(kernel, [b, b, 0, 0], [k, k, cin, 1])
            x = tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], "SAME")
        else:
            kernel = tf.slice(kernel, [b, b, 0, 0], [k, k, cin, cout])
            x = tf.nn.conv2d(x, kernel, stride, "SAME")
        return self._bn(x, name, mode, act)

    def _block(self, x: Any, p: Position, enc: Mapping[str, Any], mode: str) -> Any:
        import tensorflow as tf

        k = p.key
        kernel, mid, out = enc[f"{k}.kernel"], enc[f"{k}.mid"], enc[f"{k}.out"]

        def er() -> Any:
            h = self._conv_bn(x, f"{k}.er.expand", p.stride, mode, mid, kernel_size=kernel)
            return self._conv_bn(h, f"{k}.er.project", 1, mode, out, act=False)

        def ir() -> Any:
            h = tf.cond(enc[f"{k}.expand"] > 0, lambda: self._conv_bn(x, f"{k}.ir.expand", 1, mode, mid),
                        lambda: tf.identity(x))
            h = self._conv_bn(h, f"{k}.ir.dw", p.stride, mode, mid, kernel_size=kernel)
            return self._conv_bn(h, f"{k}.ir.project", 1, mode, out, act=False)

        y = tf.cond(enc[f"{k}.ir"] > 0, ir, er)
        if p.stride != 1:
            return y
        return tf.cond(enc[f"{k}.residual"] > 0, lambda: y + x, lambda: tf.identity(y))

    def forward(self, x: Any, enc: Mapping[str, Any], mode: str) -> Any:
        """Logits of the subnet `enc` for images `x` in [-1, 1]; `mode` is train, calibrate or infer."""
        import tensorflow as tf

        x = self._conv_bn(x, "stem", self.stem_stride, mode, enc["stem"])
        for p in self.positions:
            if p.index == 1:
                x = self._block(x, p, enc, mode)
            else:
                x = tf.cond(enc[f"{p.key}.active"] > 0,
                            lambda x=x, p=p: self._block(x, p, enc, mode), lambda x=x: tf.identity(x))
        x = self._conv_bn(x, "head.conv", 1, mode, enc["head"])
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(x, self.weights["classifier.kernel"][:enc["head"]]) + self.weights["classifier.bias"]

    # --- traced functions: one trace each, whatever the subnet ------------------------------------------------

    def _function(self, name: str) -> Any:
        """The traced function `name` (grad_step, apply_step, calibrate_step, predict), built once."""
        if name not in self._functions:
            self._functions[name] = self._trace(name)
        return self._functions[name]

    def _trace(self, name: str) -> Any:
        import tensorflow as tf

        image = tf.TensorSpec((None, self.resolution, self.resolution, 3), tf.float32, name="images")
        scalar = tf.TensorSpec((), tf.float32)
        if name == "predict":
            return tf.function(lambda x, enc: tf.nn.softmax(self.forward(x, enc, "infer")),
                               input_signature=[image, self.signature()], autograph=False)
        if name == "calibrate_step":
            def calibrate(x: Any, enc: Any, weight: Any) -> Any:
                self._calibration_weight.assign(weight)
                self.forward(x, enc, "calibrate")
                return tf.constant(0)
            return tf.function(calibrate, input_signature=[image, self.signature(), scalar], autograph=False)
        assert self._optimizer is not None
        optimizer = self._optimizer
        if name == "apply_step":
            return tf.function(lambda lr: optimizer.apply(lr), input_signature=[scalar], autograph=False)
        targets = tf.TensorSpec((None, self.num_classes), tf.float32, name="targets")

        def grad_step(x: Any, target: Any, enc: Any) -> Any:
            """One subnet of the sandwich: its loss against `target` (labels or the teacher's probabilities),
            its gradients added to the optimizer's accumulators, its probabilities (the students' targets)."""
            with tf.GradientTape() as tape:
                logits = self.forward(x, enc, "train")
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
            optimizer.accumulate(tape.gradient(loss, self.trainable))
            return loss, tf.stop_gradient(tf.nn.softmax(logits))

        return tf.function(grad_step, input_signature=[image, targets, self.signature()], autograph=False)

    def tracing_counts(self) -> dict[str, int]:
        """How often each traced function was traced (the tests check: once)."""
        return {name: fn.experimental_get_tracing_count() for name, fn in self._functions.items()}

    # --- training ---------------------------------------------------------------------------------------------

    _sandwich = 4

    def configure(self, *, sandwich_random: int = 2, learning_rate: float = 4e-3, weight_decay: float = 1e-4) -> None:
        """The training recipe: the sandwich's number of random members, AdamW's peak rate and decay."""
        if "grad_step" in self._functions:
            raise SupernetError("the supernet's recipe is fixed once it has trained")
        self._sandwich = 2 + sandwich_random
        self._optimizer = _AdamW(self.trainable, weight_decay)
        self.peak_learning_rate = learning_rate

    def train_epoch(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, epochs: int, seed: int) -> float:
        """One epoch of sandwich steps over uint8 images `x` (the epoch counter says which, for the schedule and
        the shuffle) and return the teacher's mean loss; `epochs` is the planned total (the cosine decay's end)."""
        import tensorflow as tf

        if self._optimizer is None:
            self.configure()
        grad_step, apply_step = self._function("grad_step"), self._function("apply_step")
        epoch = int(self.epoch.numpy())
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x))
        steps = len(x) // batch_size
        total, warmup = max(1, epochs * steps), max(1, steps // 2)
        # The ends of the sandwich alternate between the block types: widest er with narrowest ir, then widest ir
        # with narrowest er, so that both branches are trained at both ends of their widths.
        ends = [(self.encode(self.members("largest", block_type=big)), self.encode(self.members("smallest",
                                                                                               block_type=small)))
                for big, small in (("er", "ir"), ("ir", "er"))]
        eye = np.eye(self.num_classes, dtype=np.float32)
        losses = []
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            images = tf.constant(scale(x[idx]))
            largest, smallest = ends[s % 2]
            students = [smallest] + [self.encode(self.members("random", rng)) for _ in range(self._sandwich - 2)]
            loss, soft = grad_step(images, tf.constant(eye[y[idx]]), _tensors(largest))
            for enc in students:
                grad_step(images, soft, _tensors(enc))
            t = epoch * steps + s
            progress = min(1.0, (t - warmup) / max(1, total - warmup))
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            lr = self.peak_learning_rate * ((t + 1) / warmup if t < warmup else cosine)
            apply_step(tf.constant(lr, tf.float32))
            losses.append(float(loss))
        self.epoch.assign_add(1)
        return float(np.mean(losses)) if losses else float("nan")

    # --- scoring ----------------------------------------------------------------------------------------------

    def calibrate(self, arch: ArchSpec | Encoding, batches: Iterator[np.ndarray] | list[np.ndarray]) -> None:
        """Set the batch-norm statistics of the subnet to the average of its batch statistics over `batches`."""
        import tensorflow as tf

        enc = self.encode(arch) if isinstance(arch, ArchSpec) else arch
        fn = self._function("calibrate_step")
        tensors = _tensors(enc)
        for i, batch in enumerate(batches):
            fn(tf.constant(scale(batch)), tensors, tf.constant(1.0 / (i + 1), tf.float32))

    def predict(self, arch: ArchSpec | Encoding, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class probabilities of the subnet for uint8 images `x`, batch-norm in inference mode."""
        import tensorflow as tf

        enc = self.encode(arch) if isinstance(arch, ArchSpec) else arch
        fn = self._function("predict")
        tensors = _tensors(enc)
        return np.concatenate([fn(tf.constant(scale(x[i:i + batch_size])), tensors).numpy()
                               for i in range(0, len(x), batch_size)])

    def accuracy(self, arch: ArchSpec, x_calib: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
        """Top-1 of the subnet on `x`, `y` with inherited weights after recalibrating it on `x_calib` batches."""
        enc = self.encode(arch)
        self.calibrate(enc, x_calib)
        return float(np.mean(np.argmax(self.predict(enc, x), axis=1) == y))

    # --- export and checkpoints -------------------------------------------------------------------------------

    def to_keras(self, arch: ArchSpec) -> keras.Model:
        """`build_keras(arch)` holding the subnet's weights (sliced, kernels cropped) and current batch-norm
        statistics: the deployable model of the subnet, for `tflite_export`."""
        from search_spaces.keras_builder import build_keras

        arch = arch.with_classes(self.num_classes)
        self.encode(arch)  # checks membership
        model = build_keras(arch)
        w = {k: v.numpy() for k, v in self.weights.items()}

        def conv(layer: str, source: str, cin: int, cout: int, k: int | None = None) -> None:
            kernel = w[f"{source}.kernel"]
            if k is not None:
                b = (kernel.shape[0] - k) // 2
                kernel = kernel[b:b + k, b:b + k]
            kernel = kernel[:, :, :cin, :] if source.endswith(".dw") else kernel[:, :, :cin, :cout]
            model.get_layer(layer).set_weights([kernel])
            stats = ("gamma", "beta", "mean", "var")
            model.get_layer(f"{layer}.bn").set_weights([w[f"{source}.{s}"][:cout] for s in stats])

        conv("stem", "stem", 3, arch.stem.out_channels)
        cin = arch.stem.out_channels
        for p in self.positions:
            block = arch.stages[p.stage - 1][0]
            if p.index > block.repeats:
                continue
            name, src = p.key, f"{p.key}.{block.type}"
            kin = cin if p.index == 1 else block.out_channels
            mid = block.mid_channels(kin)
            if block.type == "er":
                conv(f"{name}.expand", f"{src}.expand", kin, mid, block.kernel)
            else:
                if mid != kin:
                    conv(f"{name}.expand", f"{src}.expand", kin, mid)
                conv(f"{name}.dw", f"{src}.dw", mid, mid, block.kernel)
            conv(f"{name}.project", f"{src}.project", mid, block.out_channels)
            cin = block.out_channels
        conv("head.conv", "head.conv", cin, arch.head.conv_channels)
        model.get_layer("classifier").set_weights([w["classifier.kernel"][:arch.head.conv_channels],
                                                   w["classifier.bias"]])
        return model

    def checkpoint(self) -> Any:
        import tensorflow as tf

        if self._optimizer is None:
            self.configure()
        assert self._optimizer is not None
        return tf.train.Checkpoint(epoch=self.epoch, weights=dict(self.weights), optimizer=self._optimizer.state())

    def save(self, directory: Path, meta: Mapping[str, Any] | None = None) -> Path:
        """Write the weights and optimizer state after the current epoch to `directory` (`epoch-<n>`), then
        point `latest.json` at it (written last and atomically, so a kill mid-write leaves the previous epoch)."""
        directory.mkdir(parents=True, exist_ok=True)
        epoch = int(self.epoch.numpy())
        prefix = self.checkpoint().write(str(directory / f"epoch-{epoch}" / "ckpt"))
        tmp = directory / "latest.json.tmp"
        relative = str(Path(prefix).relative_to(directory))  # the folder can move (artifact stores, copies)
        tmp.write_text(json.dumps({"epoch": epoch, "prefix": relative, **(meta or {})}))
        os.replace(tmp, directory / "latest.json")
        for old in directory.glob("epoch-*"):  # keep the last two epochs
            if old.name not in (f"epoch-{epoch}", f"epoch-{epoch - 1}"):
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        return directory / "latest.json"

    def restore(self, directory: Path) -> dict[str, Any] | None:
        """Load the latest checkpoint of `directory`, if any, and return its `latest.json`."""
        latest = directory / "latest.json"
        if not latest.is_file():
            return None
        meta: dict[str, Any] = json.loads(latest.read_text())
        self.checkpoint().read(str(directory / meta["prefix"])).assert_existing_objects_matched()
        return meta


class _AdamW:
    """AdamW over plain variables (decoupled weight decay, as Keras's) applying the gradients accumulated over
    the sandwich's subnets; its state is checkpointable."""

    def __init__(self, variables: list[Any], weight_decay: float) -> None:
        import tensorflow as tf

        self.variables, self.weight_decay = variables, weight_decay
        self.g = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0.0, trainable=False)

    def accumulate(self, grads: list[Any]) -> None:
        for g, acc in zip(grads, self.g, strict=True):
            if g is not None:
                acc.assign_add(g)

    def apply(self, lr: Any) -> Any:
        import tensorflow as tf

        self.t.assign_add(1.0)
        b1, b2 = 0.9, 0.999
        correction = tf.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for g, var, m, v in zip(self.g, self.variables, self.m, self.v, strict=True):
            m.assign(b1 * m + (1 - b1) * g)
            v.assign(b2 * v + (1 - b2) * tf.square(g))
            var.assign_sub(lr * self.weight_decay * var + lr * correction * m / (tf.sqrt(v) + 1e-7))
            g.assign(tf.zeros_like(g))
        return self.t

    def state(self) -> Any:
        import tensorflow as tf

        return tf.train.Checkpoint(m=list(self.m), v=list(self.v), t=self.t)


def _tensors(enc: Encoding) -> dict[str, Any]:
    import tensorflow as tf

    return {k: tf.constant(v) for k, v in enc.items()}


def scale(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to [-1, 1], as the trainer scales them."""
    return (np.asarray(x, np.float32) / 127.5 - 1.0).astype(np.float32)
