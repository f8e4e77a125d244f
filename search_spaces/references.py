"""Published reference networks as fixed `ArchSpec` points, built by name at their published resolution."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable

from search_spaces.arch import ArchSpec, Block, Head, make_divisible
from search_spaces.errors import ArchError
from search_spaces.grammar import decode

_REGISTRY: dict[str, Callable[[float], ArchSpec]] = {}
_HEADER = re.compile(r"\s*r\d+_n\d+")
"""How an architecture string starts; any other text without a '/' is taken for a reference name."""


def register(name: str) -> Callable[[Callable[[float], ArchSpec]], Callable[[float], ArchSpec]]:
    def add(fn: Callable[[float], ArchSpec]) -> Callable[[float], ArchSpec]:
        if name in _REGISTRY:
            raise ValueError(f"reference {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return add


WIDTH_SCALABLE = ("mobilenet_v1", "mobilenet_v2", "efficientnet_edgetpu_s", "efficientnet_edgetpu_m",
                  "efficientnet_edgetpu_l")
"""References that take a width multiplier (channels scaled and rounded to multiples of 8)."""


def reference_names() -> list[str]:
    return sorted(_REGISTRY)


def reference(name: str, width: float = 1.0, num_classes: int = 1000,
              resolution: int | None = None) -> ArchSpec:
    """Build a reference network; `width` is the width multiplier (MobileNetV1/V2, EfficientNet-EdgeTPU)."""
    if name not in _REGISTRY:
        raise ArchError(f"unknown reference {name!r}: expected one of {', '.join(reference_names())}",
                        value=name, where="reference", expected=", ".join(reference_names()))
    if width != 1.0 and name not in WIDTH_SCALABLE:
        raise ArchError(f"width multiplier {width} given for {name!r}: only {', '.join(WIDTH_SCALABLE)} take one",
                        value=str(width), where="reference", expected="width 1.0")
    if not 0.1 <= width <= 2.0:
        raise ArchError(f"width multiplier {width} out of range: expected 0.1..2.0",
                        value=str(width), where="reference", expected="0.1..2.0")
    arch = _REGISTRY[name](width).with_classes(num_classes)
    return arch.with_resolution(resolution) if resolution else arch


def resolve(text: str, resolution: int | None = None) -> ArchSpec:
    """A reference network's name or an architecture string, as given anywhere one is asked for; at
    `resolution` when one is given."""
    if text in _REGISTRY:
        arch = reference(text)
    elif "/" not in text and not _HEADER.match(text):  # a word: a reference name, perhaps misspelt
        near = difflib.get_close_matches(text, reference_names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
        raise ArchError(f"unknown reference network {text!r}: {hint}expected a reference name "
                        f"({', '.join(reference_names())}) or an architecture string (`nas arch show`)",
                        value=text, where="reference", expected=", ".join(reference_names()))
    else:
        arch = decode(text)
    return arch.with_resolution(resolution) if resolution else arch


def _arch(resolution: int, stem: Block, stages: list[list[Block]], head: Head) -> ArchSpec:
    return ArchSpec(resolution, 1000, stem, tuple(tuple(s) for s in stages), head)


def _cn(c: int, act: str) -> Block:
    return Block("cn", 3, 2, c, act)


@register("mobilenet_v1")
def _mobilenet_v1(alpha: float) -> ArchSpec:
    def ds(c: int, s: int, r: int = 1) -> Block:
        return Block("ds", 3, s, int(c * alpha), "relu6", repeats=r)

    stages = [[ds(64, 1)], [ds(128, 2), ds(128, 1)], [ds(256, 2), ds(256, 1)],
              [ds(512, 2), ds(512, 1, 5)], [ds(1024, 2), ds(1024, 1)]]
    return _arch(224, _cn(int(32 * alpha), "relu6"), stages, Head(activation="relu6"))


@register("mobilenet_v2")
def _mobilenet_v2(alpha: float) -> ArchSpec:
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]
    stages = [[Block("ir", 3, s, make_divisible(int(c * alpha)), "relu6", expansion=t, repeats=n)]
              for t, c, n, s in table]
    last = 1280 if alpha <= 1.0 else make_divisible(1280 * alpha)
    return _arch(224, _cn(make_divisible(32 * alpha), "relu6"), stages, Head(last, 0, "relu6"))


def _v3(rows: list[tuple[float, int, int, int, bool, str]]) -> list[list[Block]]:
    """MobileNetV3 rows (expansion, out, kernel, stride, se, act) -> one stage per output width.

    Keras sizes MobileNetV3's squeeze-excite from the expanded width (make_divisible(mid / 4));
    our `se` ratio is relative to the block input, so the ratio is derived to give the same width.
    """
    stages: list[list[Block]] = []
    c_in = 16
    for e, c, k, s, se, act in rows:
        mid = make_divisible(c_in * e) if e != 1 else c_in
        block = Block("ir", k, s, c, act, expansion=e, se_ratio=make_divisible(mid / 4) / c_in if se else 0.0)
        if not stages or stages[-1][-1].out_channels != c:
            stages.append([])
        stages[-1].append(block)
        c_in = c
    return stages


@register("mobilenet_v3_large")
def _mobilenet_v3_large(alpha: float) -> ArchSpec:
    rows = [(1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"), (3, 24, 3, 1, False, "relu"),
            (3, 40, 5, 2, True, "relu"), (3, 40, 5, 1, True, "relu"), (3, 40, 5, 1, True, "relu"),
            (6, 80, 3, 2, False, "hswish"), (2.5, 80, 3, 1, False, "hswish"), (2.3, 80, 3, 1, False, "hswish"),
            (2.3, 80, 3, 1, False, "hswish"), (6, 112, 3, 1, True, "hswish"), (6, 112, 3, 1, True, "hswish"),
            (6, 160, 5, 2, True, "hswish"), (6, 160, 5, 1, True, "hswish"), (6, 160, 5, 1, True, "hswish")]
    return _arch(224, _cn(16, "hswish"), _v3(rows), Head(960, 1280, "hswish"))


@register("mobilenet_v3_small")
def _mobilenet_v3_small(alpha: float) -> ArchSpec:
    rows = [(1, 16, 3, 2, True, "relu"), (72 / 16, 24, 3, 2, False, "relu"), (88 / 24, 24, 3, 1, False, "relu"),
            (4, 40, 5, 2, True, "hswish"), (6, 40, 5, 1, True, "hswish"), (6, 40, 5, 1, True, "hswish"),
            (3, 48, 5, 1, True, "hswish"), (3, 48, 5, 1, True, "hswish"), (6, 96, 5, 2, True, "hswish"),
            (6, 96, 5, 1, True, "hswish"), (6, 96, 5, 1, True, "hswish")]
    return _arch(224, _cn(16, "hswish"), _v3(rows), Head(576, 1024, "hswish"))


@register("mobilenet_edgetpu")
def _mobilenet_edgetpu(alpha: float) -> ArchSpec:
    def b(kind: str, k: int, s: int, e: float, c: int, r: int = 1, skip: bool = True) -> Block:
        return Block(kind, k, s, c, "relu", expansion=e, repeats=r, skip=skip)

    stages = [[b("er", 3, 1, 1, 16)],
              [b("er", 3, 2, 8, 32), b("er", 3, 1, 4, 32, 3)],
              [b("er", 3, 2, 8, 48), b("er", 3, 1, 4, 48, 3)],
              [b("ir", 3, 2, 8, 96), b("ir", 3, 1, 4, 96, 3), b("ir", 3, 1, 8, 96, skip=False),
               b("ir", 3, 1, 4, 96, 3)],
              [b("ir", 5, 2, 8, 160), b("ir", 5, 1, 4, 160, 3)],
              [b("ir", 3, 1, 8, 192)]]
    return _arch(224, _cn(32, "relu"), stages, Head(1280, 0, "relu"))


def _efficientnet_edgetpu(width: float, depth: float, resolution: int) -> ArchSpec:
    def ch(c: int) -> int:
        return make_divisible(c * width)

    stem = ch(32)
    first_mid = make_divisible(ch(24) * 4)  # the first block expands from 24 channels, not the stem's
    table = [("er", 3, 1, first_mid / stem, 24, 1), ("er", 3, 2, 8, 32, 2), ("er", 3, 2, 8, 48, 4),
             ("ir", 5, 2, 8, 96, 5), ("ir", 5, 1, 8, 144, 4), ("ir", 5, 2, 8, 192, 2)]
    stages = [[Block(t, k, s, ch(c), "relu", expansion=e, repeats=math.ceil(r * depth))]
              for t, k, s, e, c, r in table]
    return _arch(resolution, _cn(stem, "relu"), stages, Head(ch(1280), 0, "relu"))


register("efficientnet_edgetpu_s")(lambda w: _efficientnet_edgetpu(w, 1.0, 224))
register("efficientnet_edgetpu_m")(lambda w: _efficientnet_edgetpu(w, 1.1, 240))
register("efficientnet_edgetpu_l")(lambda w: _efficientnet_edgetpu(1.2 * w, 1.4, 300))


@register("efficientnet_b0")
def _efficientnet_b0(alpha: float) -> ArchSpec:
    table = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
             (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
    stages = [[Block("ir", k, s, c, "swish", expansion=e, se_ratio=0.25, repeats=r)] for k, s, e, c, r in table]
    return _arch(224, _cn(32, "swish"), stages, Head(1280, 0, "swish"))
