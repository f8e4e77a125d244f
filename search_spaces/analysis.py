"""Exact per-layer analysis of an `ArchSpec` without TensorFlow: shapes, parameters and MACs.

The layer list is the layer IR shared with the latency models. `params` counts what Keras's
`count_params()` counts (batch-norm keeps four values per channel); `folded_params` counts what
an int8 TFLite file keeps (batch-norm folded into the convolution as a bias).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search_spaces.arch import ArchSpec, Block

OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "mean", "mul", "add")


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    weights: int = 0
    bias: bool = False
    batch_norm: bool = False
    activation: str | None = None
    macs: int = 0
    inputs: tuple[int, ...] | None = field(default=None, compare=False)
    """Indices of the layers whose outputs this layer reads (-1: the network's input); None: the previous
    layer's alone. Where a network can be cut into segments depends on it (`latency_models.segment`)."""
    float_dtype: str | None = field(default=None, compare=False)
    """The floating-point type this layer computes in, when a .tflite file says so (`float32`); None: 8-bit,
    what the service's int8 export makes and the Edge TPU needs."""

    @property
    def out_channels(self) -> int:
        return self.output_shape[-1]

    @property
    def params(self) -> int:
        """Parameters as Keras counts them (batch-norm: gamma, beta, moving mean and variance)."""
        c = self.out_channels
        return self.weights + (c if self.bias else 0) + (4 * c if self.batch_norm else 0)

    @property
    def folded_params(self) -> int:
        """Parameters after folding batch-norm into the layer's bias, as in a TFLite file."""
        c = self.out_channels
        return self.weights + (c if self.bias or self.batch_norm else 0)


def layer_inputs(layers: tuple[Layer, ...]) -> list[tuple[int, ...]]:
    """Every layer's `inputs`, a chain's spelled out."""
    return [layer.inputs if layer.inputs is not None else (i - 1,) for i, layer in enumerate(layers)]


@dataclass(frozen=True)
class Analysis:
    layers: tuple[Layer, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def folded_params(self) -> int:
        return sum(layer.folded_params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_dict(self) -> dict[str, object]:
        return {
            "params": self.params,
            "folded_params": self.folded_params,
            "macs": self.macs,
            "layers": [
                {"name": la.name, "op": la.op, "input_shape": list(la.input_shape),
                 "output_shape": list(la.output_shape), "kernel": la.kernel, "stride": la.stride,
                 "activation": la.activation, "params": la.params, "macs": la.macs}
                for la in self.layers
            ],
        }


def analyze(arch: ArchSpec) -> Analysis:
    """Walk the architecture exactly as the Keras builder builds it."""
    walker = _Walker(arch.resolution)
    walker.conv("stem", arch.stem.kernel, arch.stem.stride, arch.stem.out_channels, arch.stem.activation)
    for s, stage in enumerate(arch.stages, 1):
        n = 0
        for block in stage:
            for r in range(block.repeats):
                n += 1
                walker.block(f"s{s}.b{n}", block, block.stride if r == 0 else 1)
    head = arch.head
    if head.conv_channels:
        walker.conv("head.conv", 1, 1, head.conv_channels, head.activation)
    walker.pool("head.pool")
    if head.fc_channels:
        walker.dense("head.fc", head.fc_channels, head.activation)
    walker.dense("classifier", arch.num_classes, None)
    return Analysis(tuple(walker.layers))


class _Walker:
    """Tracks the current tensor shape while emitting layers."""

    def __init__(self, resolution: int) -> None:
        self.shape: tuple[int, ...] = (resolution, resolution, 3)
        self.layers: list[Layer] = []

    @property
    def last(self) -> int:
        """The layer that produced the current tensor (-1: the network's input)."""
        return len(self.layers) - 1

    def _emit(self, name: str, op: str, out: tuple[int, ...], **kw: object) -> None:
        self.layers.append(Layer(name, op, self.shape, out, **kw))  # type: ignore[arg-type]
        self.shape = out

    def conv(self, name: str, kernel: int, stride: int, channels: int, act: str | None,
             bn: bool = True, bias: bool = False) -> None:
        h, w, c = self.shape
        ho, wo = -(-h // stride), -(-w // stride)
        weights = kernel * kernel * c * channels
        self._emit(name, "conv2d", (ho, wo, channels), kernel=kernel, stride=stride, weights=weights,
                   bias=bias, batch_norm=bn, activation=act, macs=ho * wo * weights)

    def depthwise(self, name: str, kernel: int, stride: int, act: str) -> None:
        h, w, c = self.shape
        ho, wo = -(-h // stride), -(-w // stride)
        weights = kernel * kernel * c
        self._emit(name, "depthwise_conv2d", (ho, wo, c), kernel=kernel, stride=stride, weights=weights,
                   batch_norm=True, activation=act, macs=ho * wo * weights)

    def pool(self, name: str) -> None:
        self._emit(name, "mean", (self.shape[-1],))

    def dense(self, name: str, units: int, act: str | None) -> None:
        weights = self.shape[-1] * units
        self._emit(name, "fully_connected", (units,), weights=weights, bias=True, activation=act, macs=weights)

    def squeeze_excite(self, name: str, channels: int, act: str) -> None:
        feature, producer = self.shape, self.last
        c = feature[-1]
        inner, gate = ("swish", "sigmoid") if act == "swish" else ("relu", "hard_sigmoid")
        self.pool(f"{name}.pool")
        self.shape = (1, 1, c)
        self.conv(f"{name}.reduce", 1, 1, channels, inner, bn=False, bias=True)
        self.conv(f"{name}.expand", 1, 1, c, gate, bn=False, bias=True)
        self.shape = feature
        self._emit(f"{name}.mul", "mul", feature, inputs=(producer, self.last))

    def block(self, name: str, block: Block, stride: int) -> None:
        c_in, block_input = self.shape[-1], self.last
        act = block.activation
        if block.type == "cn":
            self.conv(name, block.kernel, stride, block.out_channels, act)
            return
        if block.type == "ds":
            self.depthwise(f"{name}.dw", block.kernel, stride, act)
            if block.se_ratio:
                self.squeeze_excite(f"{name}.se", block.se_channels(c_in), act)
            self.conv(f"{name}.pw", 1, 1, block.out_channels, act)
            return
        mid = block.mid_channels(c_in)
        if block.type == "er":
            self.conv(f"{name}.expand", block.kernel, stride, mid, act)
        else:
            if mid != c_in:
                self.conv(f"{name}.expand", 1, 1, mid, act)
            self.depthwise(f"{name}.dw", block.kernel, stride, act)
        if block.se_ratio:
            self.squeeze_excite(f"{name}.se", block.se_channels(c_in), act)
        self.conv(f"{name}.project", 1, 1, block.out_channels, None)
        if block.has_residual(c_in, stride):
            self._emit(f"{name}.add", "add", self.shape, inputs=(block_input, self.last))
