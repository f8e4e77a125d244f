"""A Keras model (any functional `keras.applications` family) as the layer IR.

Batch-norm that directly follows a convolution or dense layer is folded into it, and an activation
that directly follows a layer is fused into it, as the TFLite converter does; a batch-norm that
follows anything else (DenseNet's pre-activation) stays a separate `mul` layer with `batch_norm`
set. Zero padding read only by a convolution is folded into it (the converter turns ZeroPadding2D +
a 'valid' convolution into one padded CONV_2D / DEPTHWISE_CONV_2D). Layers with no ops at inference
(dropout, flatten, input) vanish. A layer kind this reader does
not know becomes op `keras:<ClassName>` so that predictors report it as unmodeled, never as free.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from search_spaces.analysis import Layer

_FREE = {"InputLayer", "Dropout", "SpatialDropout2D", "Flatten", "Reshape", "Identity", "GaussianNoise"}
_ELEMENTWISE = {"Add": "add", "Multiply": "mul", "Subtract": "sub", "Maximum": "maximum", "Minimum": "minimum",
                "Average": "add", "Concatenate": "concatenation", "ZeroPadding2D": "pad",
                "MaxPooling2D": "max_pool_2d", "AveragePooling2D": "average_pool_2d",
                "Rescaling": "mul", "Normalization": "mul", "CustomScaleLayer": "mul", "UpSampling2D": "resize",
                "_DetectionPostprocess": "detection_postprocess"}
_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "hard_silu": "hswish", "hard_swish": "hswish", "silu": "swish",
                "swish": "swish", "sigmoid": "sigmoid", "hard_sigmoid": "hard_sigmoid", "softmax": "softmax",
                "tanh": "tanh", "gelu": "gelu", "elu": "elu", "linear": None}
_READS_LAST = {"_DetectionPostprocess"}
"""Layers whose cost follows their last input (the postprocess reads every anchor's class scores)."""
_FUSABLE = ("conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv")


def read_keras(model: Any) -> tuple[Layer, ...]:
    """The layers of a built functional Keras model in execution order."""
    reader = _Reader()
    for op in model.operations:
        reader.visit(op)
    kept = {old: new for new, old in enumerate(i for i, la in enumerate(reader.layers) if la is not None)}
    kept[-1] = -1
    return tuple(dataclasses.replace(la, inputs=tuple(kept[i] for i in la.inputs or ()))
                 for la in reader.layers if la is not None)


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def _activation_name(fn: Any) -> str | None:
    name = getattr(fn, "__name__", str(fn))
    return _ACTIVATIONS.get(name, name)


class _Reader:
    def __init__(self) -> None:
        self.layers: list[Layer | None] = []
        self.producer: dict[int, int] = {}  # id(KerasTensor) -> index into self.layers
        self.consumers: dict[int, int] = {}  # id(KerasTensor) -> how many ops read it

    def visit(self, op: Any) -> None:
        kind = type(op).__name__
        if kind in ("Functional", "Sequential", "Model"):
            for inner in op.operations:
                self.visit(inner)
            return
        node = op._inbound_nodes[0]
        inputs, outputs = list(node.input_tensors), list(node.output_tensors)
        for t in inputs:
            self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1
        if kind in _FREE or not inputs:
            for out in outputs:  # a free op passes its input's producer through
                if inputs and id(inputs[0]) in self.producer:
                    self.producer[id(out)] = self.producer[id(inputs[0])]
            return
        out = outputs[0]
        in_shape, out_shape = _shape(inputs[-1 if kind in _READS_LAST else 0]), _shape(out)
        if kind == "BatchNormalization":
            if self._fuse(inputs[0], lambda la: la.op in _FUSABLE and not la.batch_norm and la.activation is None,
                          lambda la: dataclasses.replace(la, batch_norm=True), out):
                return
            self._emit(out, Layer(op.name, "mul", in_shape, out_shape, batch_norm=True), inputs)
            return
        if kind in ("ReLU", "Activation", "Softmax"):
            act = self._activation(op, kind)
            if self._fuse(inputs[0], lambda la: la.activation is None and la.op not in ("concatenation",),
                          lambda la: dataclasses.replace(la, activation=act), out):
                return
            self._emit(out, Layer(op.name, act or "identity", in_shape, out_shape), inputs)
            return
        layer = dataclasses.replace(self._layer(op, kind, in_shape, out_shape), inputs=self._producers(inputs))
        if layer.op in ("conv2d", "depthwise_conv2d"):
            layer = self._fold_padding(inputs[0], layer)
        act = _activation_name(getattr(op, "activation", None)) if hasattr(op, "activation") else None
        if act is not None:
            layer = dataclasses.replace(layer, activation=act)
        self._emit(out, layer)

    def _activation(self, op: Any, kind: str) -> str | None:
        if kind == "ReLU":
            return "relu6" if op.max_value == 6 else "relu"
        if kind == "Softmax":
            return "softmax"
        return _activation_name(op.activation)

    def _fuse(self, tensor: Any, can: Any, change: Any, out: Any) -> bool:
        index = self.producer.get(id(tensor))
        if index is None or self.consumers.get(id(tensor), 0) != 1:
            return False
        layer = self.layers[index]
        if layer is None or not can(layer):
            return False
        self.layers[index] = dataclasses.replace(change(layer), output_shape=_shape(out))
        self.producer[id(out)] = index
        return True

    def _fold_padding(self, tensor: Any, conv: Layer) -> Layer:
        """`conv` reading the pad's input, and the pad dropped, when only `conv` reads the padded tensor."""
        index = self.producer.get(id(tensor))
        if index is None or self.consumers.get(id(tensor), 0) != 1:
            return conv
        pad = self.layers[index]
        if pad is None or pad.op != "pad":
            return conv
        self.layers[index] = None
        return dataclasses.replace(conv, input_shape=pad.input_shape, inputs=pad.inputs)

    def _producers(self, tensors: list[Any]) -> tuple[int, ...]:
        """The indices of the layers that produced `tensors` (-1: the model's input)."""
        return tuple(self.producer.get(id(t), -1) for t in tensors)

    def _emit(self, out: Any, layer: Layer, inputs: list[Any] | None = None) -> None:
        if inputs is not None:
            layer = dataclasses.replace(layer, inputs=self._producers(inputs))
        self.layers.append(layer)
        self.producer[id(out)] = len(self.layers) - 1

    def _layer(self, op: Any, kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Layer:
        name = op.name
        if kind in ("Conv2D", "DepthwiseConv2D"):
            kh, kw = op.kernel_size
            cin, cout = in_shape[-1], out_shape[-1]
            groups = cin if kind == "DepthwiseConv2D" else int(getattr(op, "groups", 1))
            stride = int(op.strides[0])
            weights = kh * kw * (cin // groups) * cout
            ho, wo = out_shape[0], out_shape[1]
            depthwise = groups == cin and groups > 1 and cout % cin == 0
            return Layer(name, "depthwise_conv2d" if depthwise else "conv2d", in_shape, out_shape, kernel=kh,
                         stride=stride, weights=weights, bias=bool(op.use_bias), macs=ho * wo * weights)
        if kind == "Conv2DTranspose":
            kh, kw = op.kernel_size
            cin, cout = in_shape[-1], out_shape[-1]
            weights = kh * kw * cin * cout
            return Layer(name, "transpose_conv", in_shape, out_shape, kernel=kh, stride=int(op.strides[0]),
                         weights=weights, bias=bool(op.use_bias), macs=in_shape[0] * in_shape[1] * weights)
        if kind == "Dense":
            cin, cout = in_shape[-1], out_shape[-1]
            positions = 1
            for d in out_shape[:-1]:
                positions *= d
            return Layer(name, "fully_connected", in_shape, out_shape, weights=cin * cout, bias=bool(op.use_bias),
                         macs=positions * cin * cout)
        if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            return Layer(name, "mean" if "Average" in kind else "reduce_max", in_shape, out_shape)
        if kind in _ELEMENTWISE:
            pool = getattr(op, "pool_size", None)
            strides = getattr(op, "strides", None)
            return Layer(name, _ELEMENTWISE[kind], in_shape, out_shape, kernel=int(pool[0]) if pool else 1,
                         stride=int(strides[0]) if strides else 1)
        return Layer(name, f"keras:{kind}", in_shape, out_shape)
