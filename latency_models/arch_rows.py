"""The fast path from `ArchSpec`s to their layer rows, for ranking many fresh candidates.

`search_spaces.analyze` builds a `Layer` object per layer; pricing thousands of new candidates a
second cannot afford that. Here each block repeat (a "unit") is walked exactly as the analysis
walks it, straight into the integer layer specs `features.layer_spec` would give, and the unit's specs are
cached by (block fields but its depth, input shape, stride): candidates of one search space share
many units. The specs
of a whole batch are turned into rows in one vectorised `features.rows_from_specs` call, the same
function that makes the rows of `layer_table(analyze(arch).layers)`, so both paths give the same
rows (a test checks this on samples of every registered space).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latency_models.features import TableBatch, op_activation_id, rows_from_specs, specs_array
from search_spaces import ArchSpec
from search_spaces.arch import ACTIVATIONS, Block, Head

Shape = tuple[int, int, int]
_Specs = list[tuple[int, ...]]

_UNITS: dict[tuple[object, ...], tuple[np.ndarray, Shape]] = {}
MAX_CACHED_UNITS = 200_000
"""Bound on the unit cache (a few hundred bytes each); it is emptied when full."""


_ACTIVATIONS = (*ACTIVATIONS, "sigmoid", "hard_sigmoid", None)
"""Block and head activations, and the squeeze-excite gates."""
_CONV, _DEPTHWISE, _DENSE = ({act: op_activation_id(op, act) for act in _ACTIVATIONS}
                             for op in ("conv2d", "depthwise_conv2d", "fully_connected"))
_ELEMENTWISE = {op: op_activation_id(op, None) for op in ("mean", "mul", "add")}


def _conv(specs: _Specs, shape: Shape, kernel: int, stride: int, channels: int, act: str | None,
          bn: bool = True, bias: bool = False) -> Shape:
    h, w, c = shape
    ho, wo = -(-h // stride), -(-w // stride)
    weights = kernel * kernel * c * channels
    specs.append((_CONV[act], h * w * c, ho * wo * channels, channels, kernel, weights, int(bias), int(bn),
                  ho * wo * weights))
    return ho, wo, channels


def _depthwise(specs: _Specs, shape: Shape, kernel: int, stride: int, act: str) -> Shape:
    h, w, c = shape
    ho, wo = -(-h // stride), -(-w // stride)
    weights = kernel * kernel * c
    specs.append((_DEPTHWISE[act], h * w * c, ho * wo * c, c, kernel, weights, 0, 1, ho * wo * weights))
    return ho, wo, c


def _dense(specs: _Specs, units_in: int, units: int, act: str | None) -> int:
    weights = units_in * units
    specs.append((_DENSE[act], units_in, units, units, 1, weights, 1, 0, weights))
    return units


def _elementwise(specs: _Specs, op: str, shape: Shape, out: tuple[int, ...]) -> None:
    size = shape[0] * shape[1] * shape[2]
    out_size = out[0] if len(out) == 1 else size
    specs.append((_ELEMENTWISE[op], size, out_size, out[-1], 1, 0, 0, 0, 0))


def _squeeze_excite(specs: _Specs, shape: Shape, channels: int, act: str) -> None:
    c = shape[-1]
    inner, gate = ("swish", "sigmoid") if act == "swish" else ("relu", "hard_sigmoid")
    _elementwise(specs, "mean", shape, (c,))
    reduced = _conv(specs, (1, 1, c), 1, 1, channels, inner, bn=False, bias=True)
    _conv(specs, reduced, 1, 1, c, gate, bn=False, bias=True)
    _elementwise(specs, "mul", shape, shape)


def _unit_specs(block: Block, shape: Shape, stride: int) -> tuple[np.ndarray, Shape]:
    """One repeat of `block` on an input of `shape`, as `search_spaces.analysis` walks it."""
    specs: _Specs = []
    c_in = shape[-1]
    act = block.activation
    if block.type == "cn":
        shape = _conv(specs, shape, block.kernel, stride, block.out_channels, act)
    elif block.type == "ds":
        shape = _depthwise(specs, shape, block.kernel, stride, act)
        if block.se_ratio:
            _squeeze_excite(specs, shape, block.se_channels(c_in), act)
        shape = _conv(specs, shape, 1, 1, block.out_channels, act)
    else:
        mid = block.mid_channels(c_in)
        if block.type == "er":
            shape = _conv(specs, shape, block.kernel, stride, mid, act)
        else:
            if mid != c_in:
                shape = _conv(specs, shape, 1, 1, mid, act)
            shape = _depthwise(specs, shape, block.kernel, stride, act)
        if block.se_ratio:
            _squeeze_excite(specs, shape, block.se_channels(c_in), act)
        shape = _conv(specs, shape, 1, 1, block.out_channels, None)
        if block.has_residual(c_in, stride):
            _elementwise(specs, "add", shape, shape)
    return specs_array(specs), shape


def _head_specs(head: Head, num_classes: int, shape: Shape) -> np.ndarray:
    specs: _Specs = []
    if head.conv_channels:
        shape = _conv(specs, shape, 1, 1, head.conv_channels, head.activation)
    _elementwise(specs, "mean", shape, (shape[-1],))
    units = shape[-1]
    if head.fc_channels:
        units = _dense(specs, units, head.fc_channels, head.activation)
    _dense(specs, units, num_classes, None)
    return specs_array(specs)


def _cache(key: tuple[object, ...], value: tuple[np.ndarray, Shape]) -> tuple[np.ndarray, Shape]:
    if len(_UNITS) >= MAX_CACHED_UNITS:
        _UNITS.clear()
    _UNITS[key] = value
    return value


def _arch_parts(arch: ArchSpec, parts: list[np.ndarray]) -> int:
    """Append the spec arrays of `arch` to `parts`; return its number of layers."""
    units = _UNITS
    shape: Shape = (arch.resolution, arch.resolution, 3)
    count = 0
    stem = arch.stem
    key: tuple[object, ...] = (stem, shape, stem.stride)
    specs, shape = units.get(key) or _cache(key, _unit_specs(stem, shape, stem.stride))
    parts.append(specs)
    count += len(specs)
    for stage in arch.stages:
        for block in stage:
            unit = (block.type, block.kernel, block.out_channels, block.activation, block.expansion, block.se_ratio,
                    block.skip)  # what a repeat depends on: not `repeats`, so blocks of any depth share units
            for r in range(block.repeats):
                stride = block.stride if r == 0 else 1
                key = (unit, shape, stride)
                specs, shape = units.get(key) or _cache(key, _unit_specs(block, shape, stride))
                parts.append(specs)
                count += len(specs)
    key = (arch.head, arch.num_classes, shape)
    specs, _ = units.get(key) or _cache(key, (_head_specs(arch.head, arch.num_classes, shape), shape))
    parts.append(specs)
    return count + len(specs)


def arch_batch(archs: Sequence[ArchSpec]) -> TableBatch:
    """The rows of many architectures, concatenated in order, with their lengths and input sizes."""
    parts: list[np.ndarray] = []
    lengths = np.array([_arch_parts(arch, parts) for arch in archs], dtype=np.int64)
    inputs = np.array([3.0 * arch.resolution * arch.resolution for arch in archs])
    return TableBatch(rows_from_specs(np.concatenate(parts)), lengths, inputs)


def clear_cache() -> None:
    _UNITS.clear()
