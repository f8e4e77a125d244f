"""Build the Keras model of an `ArchSpec`, layer for layer as `analysis.analyze` describes it.

Every analysis layer becomes a Keras layer of the same name (`stem`, `s2.b1.expand`, `s2.b1.se.mul`,
`head.fc`, `classifier`); its batch-norm and activation are named `<name>.bn` and `<name>.act`, so a
Keras or TFLite layer maps back to its analysis row. Convolutions use 'same' padding and no bias
(batch-norm follows); squeeze-excite convolutions and dense layers have a bias and no batch-norm.

Inputs are float images of shape (resolution, resolution, 3) scaled to [-1, 1]; the model holds no
preprocessing, so the caller scales pixels. The output is the softmax over `arch.num_classes`.

Every activation converts to int8 TFLite kernels (checked in tests): relu and relu6 fuse into the
layer before them, hswish (`x * relu6(x + 3) / 6`) becomes HARD_SWISH, swish (`x * sigmoid(x)`)
becomes LOGISTIC and MUL; the squeeze-excite hard-sigmoid gate `relu6(x + 3) / 6` becomes the
convolution with +3 folded into its bias and relu6 fused, then a MUL by 1/6; the sigmoid gate LOGISTIC.

TensorFlow is imported inside `build_keras` only: this package stays importable without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.arch import ArchSpec, Block

if TYPE_CHECKING:
    import keras

INPUT_RANGE = (-1.0, 1.0)
"""The value range the model expects its input pixels in."""


def build_keras(arch: ArchSpec, *, dropout: float = 0.2, bn_momentum: float = 0.99) -> keras.Model:
    """The Keras model of `arch`; its `count_params()` equals `analyze(arch).params`."""
    import keras

    builder = _Builder(keras, bn_momentum)
    inputs = keras.Input((arch.resolution, arch.resolution, 3), name="image")
    x = builder.conv(inputs, "stem", arch.stem.kernel, arch.stem.stride, arch.stem.out_channels,
                     arch.stem.activation)
    for s, stage in enumerate(arch.stages, 1):
        n = 0
        for block in stage:
            for r in range(block.repeats):
                n += 1
                x = builder.block(x, f"s{s}.b{n}", block, block.stride if r == 0 else 1)
    head = arch.head
    if head.conv_channels:
        x = builder.conv(x, "head.conv", 1, 1, head.conv_channels, head.activation)
    x = keras.layers.GlobalAveragePooling2D(name="head.pool")(x)
    if head.fc_channels:
        x = keras.layers.Dense(head.fc_channels, name="head.fc")(x)
        x = builder.activation(x, "head.fc.act", head.activation)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head.dropout")(x)
    outputs = keras.layers.Dense(arch.num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="candidate")


class _Builder:
    """Emits the Keras layers of one analysis layer at a time; mirrors `analysis._Walker`."""

    def __init__(self, keras: Any, bn_momentum: float) -> None:
        self.keras = keras
        self.layers = keras.layers
        self.bn_momentum = bn_momentum

    def activation(self, x: Any, name: str, act: str) -> Any:
        layers, activations = self.layers, self.keras.activations
        if act == "relu":
            return layers.ReLU(name=name)(x)
        if act == "relu6":
            return layers.ReLU(6.0, name=name)(x)
        if act == "hswish":
            return layers.Activation(activations.hard_silu, name=name)(x)
        if act == "swish":
            return layers.Activation(activations.silu, name=name)(x)
        if act == "hard_sigmoid":
            return layers.Activation(activations.hard_sigmoid, name=name)(x)
        if act == "sigmoid":
            return layers.Activation(activations.sigmoid, name=name)(x)
        raise ValueError(f"unknown activation {act!r} for layer {name!r}")

    def _bn_act(self, x: Any, name: str, act: str | None) -> Any:
        x = self.layers.BatchNormalization(momentum=self.bn_momentum, name=f"{name}.bn")(x)
        return self.activation(x, f"{name}.act", act) if act else x

    def conv(self, x: Any, name: str, kernel: int, stride: int, channels: int, act: str | None) -> Any:
        x = self.layers.Conv2D(channels, kernel, stride, padding="same", use_bias=False, name=name)(x)
        return self._bn_act(x, name, act)

    def depthwise(self, x: Any, name: str, kernel: int, stride: int, act: str) -> Any:
        x = self.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name)(x)
        return self._bn_act(x, name, act)

    def squeeze_excite(self, x: Any, name: str, channels: int, act: str) -> Any:
        inner, gate = ("swish", "sigmoid") if act == "swish" else ("relu", "hard_sigmoid")
        layers = self.layers
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
        s = layers.Conv2D(channels, 1, name=f"{name}.reduce")(s)
        s = self.activation(s, f"{name}.reduce.act", inner)
        s = layers.Conv2D(x.shape[-1], 1, name=f"{name}.expand")(s)
        s = self.activation(s, f"{name}.expand.act", gate)
        return layers.Multiply(name=f"{name}.mul")([x, s])

    def block(self, x: Any, name: str, block: Block, stride: int) -> Any:
        c_in = x.shape[-1]
        act = block.activation
        if block.type == "cn":
            return self.conv(x, name, block.kernel, stride, block.out_channels, act)
        if block.type == "ds":
            x = self.depthwise(x, f"{name}.dw", block.kernel, stride, act)
            if block.se_ratio:
                x = self.squeeze_excite(x, f"{name}.se", block.se_channels(c_in), act)
            return self.conv(x, f"{name}.pw", 1, 1, block.out_channels, act)
        shortcut = x
        mid = block.mid_channels(c_in)
        if block.type == "er":
            x = self.conv(x, f"{name}.expand", block.kernel, stride, mid, act)
        else:
            if mid != c_in:
                x = self.conv(x, f"{name}.expand", 1, 1, mid, act)
            x = self.depthwise(x, f"{name}.dw", block.kernel, stride, act)
        if block.se_ratio:
            x = self.squeeze_excite(x, f"{name}.se", block.se_channels(c_in), act)
        x = self.conv(x, f"{name}.project", 1, 1, block.out_channels, None)
        if block.has_residual(c_in, stride):
            x = self.layers.Add(name=f"{name}.add")([shortcut, x])
        return x
