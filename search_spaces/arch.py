"""The architecture IR: frozen dataclasses that every other part of the service reads.

A candidate is an `ArchSpec`: input resolution, a stem convolution, stages of blocks, a head and
the number of classes. Its canonical string (see `grammar`) is its identity everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from search_spaces.errors import ArchError

BLOCK_TYPES = ("cn", "ds", "ir", "er")
"""cn: plain conv; ds: depthwise-separable (MobileNetV1); ir: inverted residual (MBConv);
er: fused inverted residual (k x k expansion conv + 1x1 projection, EfficientNet-EdgeTPU)."""

ACTIVATIONS = ("relu", "relu6", "hswish", "swish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10% (as MobileNet does)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class Block:
    """One block, repeated `repeats` times; only the first repeat uses `stride`.

    `expansion` and `se_ratio` are relative to the block's input channels. The residual
    connection of `ir`/`er` is automatic (stride 1 and equal channels) unless `skip` is False;
    `ds` and `cn` never have one.
    """

    type: str
    kernel: int
    stride: int
    out_channels: int
    activation: str
    expansion: float = 1.0
    se_ratio: float = 0.0
    repeats: int = 1
    skip: bool = True

    def __post_init__(self) -> None:
        where = f"block {self.type!r}"
        _check(self.type in BLOCK_TYPES, "type", self.type, where, f"one of {', '.join(BLOCK_TYPES)}")
        _check(self.kernel in (1, 3, 5, 7), "kernel", self.kernel, where, "1, 3, 5 or 7")
        _check(self.stride in (1, 2), "stride", self.stride, where, "1 or 2")
        _check(1 <= self.out_channels <= 8192, "channels", self.out_channels, where, "1..8192")
        _check(self.activation in ACTIVATIONS, "activation", self.activation, where,
               f"one of {', '.join(ACTIVATIONS)}")
        _check(1.0 <= self.expansion <= 16.0, "expansion", self.expansion, where, "1..16")
        _check(0.0 <= self.se_ratio <= 4.0, "se ratio", self.se_ratio, where, "0..4")
        _check(1 <= self.repeats <= 32, "repeats", self.repeats, where, "1..32")
        if self.type in ("cn", "ds"):
            _check(self.expansion == 1.0, "expansion", self.expansion, where,
                   "no expansion token on cn/ds blocks")
            _check(self.skip, "noskip", "noskip", where, "no noskip token on cn/ds blocks")
        if self.type == "cn":
            _check(self.se_ratio == 0.0, "se ratio", self.se_ratio, where, "no se token on cn blocks")

    def mid_channels(self, in_channels: int) -> int:
        """Channels after the expansion of an `ir`/`er` block with this input width."""
        if self.expansion == 1.0:
            return in_channels
        return make_divisible(in_channels * self.expansion)

    def se_channels(self, in_channels: int) -> int:
        """Reduced width of the squeeze-excite bottleneck (relative to the block input, as in EfficientNet)."""
        return max(1, round(in_channels * self.se_ratio))

    def has_residual(self, in_channels: int, stride: int) -> bool:
        return self.type in ("ir", "er") and self.skip and stride == 1 and in_channels == self.out_channels


@dataclass(frozen=True)
class Head:
    """Optional 1x1 conv before global pooling, optional hidden dense layer after it, then the classifier."""

    conv_channels: int = 0
    fc_channels: int = 0
    activation: str = "relu"

    def __post_init__(self) -> None:
        _check(0 <= self.conv_channels <= 8192, "channels", self.conv_channels, "head", "0..8192")
        _check(0 <= self.fc_channels <= 8192, "fc channels", self.fc_channels, "head", "0..8192")
        _check(self.activation in ACTIVATIONS, "activation", self.activation, "head",
               f"one of {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class ArchSpec:
    resolution: int
    num_classes: int
    stem: Block
    stages: tuple[tuple[Block, ...], ...]
    head: Head

    def __post_init__(self) -> None:
        _check(16 <= self.resolution <= 1024, "resolution", self.resolution, "header", "16..1024")
        _check(2 <= self.num_classes <= 100000, "classes", self.num_classes, "header", "2..100000")
        _check(self.stem.type == "cn" and self.stem.repeats == 1, "stem", self.stem.type, "stem",
               "a single cn block")
        _check(len(self.stages) >= 1, "stages", len(self.stages), "body", "at least one stage")
        for i, stage in enumerate(self.stages, 1):
            _check(len(stage) >= 1, "stage", "empty", f"stage {i}", "at least one block")

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for stage in self.stages for b in stage)

    def with_resolution(self, resolution: int) -> ArchSpec:
        return ArchSpec(resolution, self.num_classes, self.stem, self.stages, self.head)

    def with_classes(self, num_classes: int) -> ArchSpec:
        return ArchSpec(self.resolution, num_classes, self.stem, self.stages, self.head)


def _check(ok: bool, what: str, value: object, where: str, expected: str) -> None:
    if not ok:
        raise ArchError(f"invalid {what} {value!r} in {where}: expected {expected}",
                        value=str(value), where=where, expected=expected)
