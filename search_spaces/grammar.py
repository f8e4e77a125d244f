"""The one strict grammar between an `ArchSpec` and its canonical string.

    r224_n1000/cn_k3_s2_c32_relu6/ir_k3_s1_e1_c16_relu6/ir_r2_k3_s2_e6_c24_relu6/.../head_c1280_relu6

Sections are separated by '/': a header (resolution, classes), the stem, one section per stage,
and the head. Blocks within a stage are joined by '-'. A block is '_'-separated tokens:

    type     cn | ds | ir | er          (first token)
    r<int>   repeats (default 1)        k<int>  kernel       s<int>  stride of the first repeat
    e<num>   expansion (ir/er only)     c<int>  out channels se<num> squeeze-excite ratio
    relu | relu6 | hswish | swish       activation          noskip   no residual (ir/er)

The head is 'head' with optional c<int> (1x1 conv before pooling), f<int> (dense layer after
pooling) and an activation. Unknown, duplicate or missing tokens raise `ArchError` naming the
token, where it stood and what was expected; `decode(encode(x)) == x` for every ArchSpec.
"""

from __future__ import annotations

import re
from decimal import Decimal

from search_spaces.arch import ACTIVATIONS, ArchSpec, Block, Head
from search_spaces.errors import ArchError

_NUM = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"
_BLOCK_TOKENS = {"r": r"\d+", "k": r"\d+", "s": r"\d+", "e": _NUM, "c": r"\d+", "se": _NUM}
_HEAD_TOKENS = {"c": r"\d+", "f": r"\d+"}
_EXPECTED_BLOCK = "r<int>, k<int>, s<int>, e<num>, c<int>, se<num>, an activation or noskip"
_EXPECTED_HEAD = "c<int>, f<int> or an activation"


def encode(arch: ArchSpec) -> str:
    """The canonical string of an architecture."""
    sections = [f"r{arch.resolution}_n{arch.num_classes}", encode_block(arch.stem)]
    sections += ["-".join(encode_block(b) for b in stage) for stage in arch.stages]
    sections.append(encode_head(arch.head))
    return "/".join(sections)


def encode_block(block: Block) -> str:
    tokens = [block.type]
    if block.repeats != 1:
        tokens.append(f"r{block.repeats}")
    tokens += [f"k{block.kernel}", f"s{block.stride}"]
    if block.type in ("ir", "er"):
        tokens.append(f"e{_num(block.expansion)}")
    tokens.append(f"c{block.out_channels}")
    if block.se_ratio:
        tokens.append(f"se{_num(block.se_ratio)}")
    tokens.append(block.activation)
    if not block.skip:
        tokens.append("noskip")
    return "_".join(tokens)


def encode_head(head: Head) -> str:
    tokens = ["head"]
    if head.conv_channels:
        tokens.append(f"c{head.conv_channels}")
    if head.fc_channels:
        tokens.append(f"f{head.fc_channels}")
    tokens.append(head.activation)
    return "_".join(tokens)


def decode(text: str) -> ArchSpec:
    """Parse a canonical (or reordered-token) architecture string; raise `ArchError` on anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ArchError("empty architecture string: expected 'r<res>_n<classes>/<stem>/<stage>.../head_...'",
                        value=str(text), where="architecture", expected="a block string")
    sections = text.strip().split("/")
    if len(sections) < 4:
        raise ArchError(
            f"architecture {text!r} has {len(sections)} '/'-separated section(s): expected at least 4 "
            "(header/stem/stage.../head), e.g. r224_n1000/cn_k3_s2_c32_relu6/ir_k3_s1_e1_c16_relu6/head_relu",
            value=text, where="architecture", expected="header/stem/stage.../head")
    resolution, classes = _decode_header(sections[0])
    stem = decode_block(sections[1], "stem")
    stages = tuple(
        tuple(decode_block(b, f"block {j} of stage {i}") for j, b in enumerate(section.split("-"), 1))
        for i, section in enumerate(sections[2:-1], 1)
    )
    head = _decode_head(sections[-1])
    return ArchSpec(resolution, classes, stem, stages, head)


def decode_block(text: str, where: str = "block") -> Block:
    parts = text.split("_")
    kind = parts[0]
    if kind not in ("cn", "ds", "ir", "er"):
        raise ArchError(f"unknown block type {kind!r} in {where} ({text!r}): expected cn, ds, ir or er",
                        value=kind, where=where, expected="cn, ds, ir or er")
    values = _tokens(parts[1:], _BLOCK_TOKENS, where, text, _EXPECTED_BLOCK, flags=("noskip",))
    for required in ("k", "s", "c", "act") + (("e",) if kind in ("ir", "er") else ()):
        if required not in values:
            name = "activation" if required == "act" else f"{required}<...>"
            raise ArchError(f"missing {name} token in {where} ({text!r})", value=text, where=where,
                            expected=f"a {name} token")
    return Block(
        type=kind,
        kernel=int(values["k"]),
        stride=int(values["s"]),
        out_channels=int(values["c"]),
        activation=values["act"],
        expansion=float(values.get("e", 1.0)),
        se_ratio=float(values.get("se", 0.0)),
        repeats=int(values.get("r", 1)),
        skip="noskip" not in values,
    )


def _decode_header(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"r(\d+)_n(\d+)", text)
    if not match:
        raise ArchError(f"bad header {text!r}: expected r<resolution>_n<classes>, e.g. r224_n1000",
                        value=text, where="header", expected="r<resolution>_n<classes>")
    return int(match[1]), int(match[2])


def _decode_head(text: str) -> Head:
    parts = text.split("_")
    if parts[0] != "head":
        raise ArchError(f"last section {text!r} is not a head: expected head_[c<int>_][f<int>_]<activation>",
                        value=text, where="head", expected="head_[c<int>_][f<int>_]<activation>")
    values = _tokens(parts[1:], _HEAD_TOKENS, "head", text, _EXPECTED_HEAD)
    if "act" not in values:
        raise ArchError(f"missing activation token in head ({text!r})", value=text, where="head",
                        expected=f"one of {', '.join(ACTIVATIONS)}")
    return Head(int(values.get("c", 0)), int(values.get("f", 0)), values["act"])


def _tokens(parts: list[str], patterns: dict[str, str], where: str, text: str, expected: str,
            flags: tuple[str, ...] = ()) -> dict[str, str]:
    values: dict[str, str] = {}
    for token in parts:
        key, value = _match(token, patterns, flags)
        if key is None:
            raise ArchError(f"unknown token {token!r} in {where} ({text!r}): expected {expected}",
                            value=token, where=where, expected=expected)
        if key in values:
            raise ArchError(f"duplicate token {token!r} in {where} ({text!r})", value=token, where=where,
                            expected="each token at most once")
        values[key] = value
    return values


def _match(token: str, patterns: dict[str, str], flags: tuple[str, ...]) -> tuple[str | None, str]:
    if token in ACTIVATIONS:
        return "act", token
    if token in flags:
        return token, token
    for key in sorted(patterns, key=len, reverse=True):
        match = re.fullmatch(f"{key}({patterns[key]})", token)
        if match:
            return key, match[1]
    return None, ""


def _num(value: float) -> str:
    """The shortest text that reads back as `value`, never in exponent notation: its '-' would split the stage."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")

