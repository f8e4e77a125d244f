"""The grammar round-trips every ArchSpec, and refuses bad strings with errors that say what and where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_spaces import ArchError, ArchSpec, Block, Head, analyze, decode, encode, reference, reference_names
from search_spaces.arch import ACTIVATIONS, BLOCK_TYPES, make_divisible

activations = st.sampled_from(ACTIVATIONS)
ratios = st.floats(min_value=0.0, max_value=4.0, allow_nan=False, allow_infinity=False)
expansions = st.floats(min_value=1.0, max_value=16.0, allow_nan=False, allow_infinity=False)


@st.composite
def blocks(draw: st.DrawFn, kind: str | None = None) -> Block:
    kind = kind or draw(st.sampled_from(BLOCK_TYPES))
    expanding = kind in ("ir", "er")
    return Block(
        type=kind,
        kernel=draw(st.sampled_from((1, 3, 5, 7))),
        stride=draw(st.sampled_from((1, 2))),
        out_channels=draw(st.integers(1, 8192)),
        activation=draw(activations),
        expansion=draw(expansions) if expanding else 1.0,
        se_ratio=0.0 if kind == "cn" else draw(st.one_of(st.just(0.0), ratios)),
        repeats=draw(st.integers(1, 32)),
        skip=draw(st.booleans()) if expanding else True,
    )


@st.composite
def archs(draw: st.DrawFn) -> ArchSpec:
    drawn = draw(blocks("cn"))
    stem = Block("cn", drawn.kernel, drawn.stride, drawn.out_channels, drawn.activation)  # one repeat
    stages = draw(st.lists(st.lists(blocks(), min_size=1, max_size=3).map(tuple), min_size=1, max_size=5))
    head = Head(draw(st.integers(0, 8192)), draw(st.integers(0, 8192)), draw(activations))
    return ArchSpec(draw(st.integers(16, 1024)), draw(st.integers(2, 100000)), stem, tuple(stages), head)


@settings(max_examples=300, deadline=None)
@given(archs())
def test_decode_inverts_encode(arch: ArchSpec) -> None:
    text = encode(arch)
    assert decode(text) == arch
    assert encode(decode(text)) == text


@pytest.mark.parametrize("name", reference_names())
def test_reference_strings_round_trip(name: str) -> None:
    arch = reference(name)
    assert decode(encode(arch)) == arch


GOOD = "r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/head_relu"


@pytest.mark.parametrize(("text", "value", "where"), [
    ("", "", "architecture"),
    ("r224_n10/cn_k3_s2_c16_relu/head_relu", "r224_n10/cn_k3_s2_c16_relu/head_relu", "architecture"),
    ("x224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/head_relu", "x224_n10", "header"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu_foo/head_relu", "foo", "block 1 of stage 1"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu-ir_k3_k5_s1_e6_c24_relu/head_relu", "k5",
     "block 2 of stage 1"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/ir_k3_s1_e6_c24_relu_relu6/head_relu", "relu6",
     "block 1 of stage 2"),
    ("r224_n10/cn_k3_s2_c16_relu/zz_k3_s1_c24_relu/head_relu", "zz", "block 1 of stage 1"),
    ("r224_n10/cn_k3_s2_c16/ir_k3_s1_e6_c24_relu/head_relu", "cn_k3_s2_c16", "stem"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k4_s1_e6_c24_relu/head_relu", "4", "block 'ir'"),
    ("r224_n10/cn_k3_s2_c16_relu/ds_k3_s1_e6_c24_relu/head_relu", "6.0", "block 'ds'"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/tail_relu", "tail_relu", "head"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/head_c8_c16_relu", "c16", "head"),
    ("r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/head_gelu", "gelu", "head"),
    ("r8_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu/head_relu", "8", "header"),
])
def test_bad_strings_name_the_value_and_where_it_stood(text: str, value: str, where: str) -> None:
    with pytest.raises(ArchError) as info:
        decode(text)
    assert info.value.value == value
    assert info.value.where == where
    message = str(info.value)
    assert repr(value) in message or value in message
    assert where in message


def test_good_string_decodes() -> None:
    assert encode(decode(GOOD)) == GOOD


def test_unknown_reference_names_it_and_the_known_ones() -> None:
    with pytest.raises(ArchError, match="'resnet50'.*mobilenet_v2") as info:
        reference("resnet50")
    assert info.value.value == "resnet50" and info.value.where == "reference"


def nas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("nas")), *args], capture_output=True, text=True)


@pytest.mark.parametrize("bad", ["BAD", "r224_n10/cn_k3_s2_c16_relu/ir_k3_s1_e6_c24_relu_foo/head_relu"])
def test_cli_rejects_a_bad_architecture_in_one_line(bad: str) -> None:
    result = nas("arch", "show", bad)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]


@pytest.mark.parametrize(("name", "params", "macs"), [
    ("mobilenet_v2", 3.50e6, 300e6),
    ("mobilenet_v1", 4.23e6, 569e6),
    ("efficientnet_b0", 5.3e6, 390e6),
])
def test_analysis_matches_published_figures(name: str, params: float, macs: float) -> None:
    analysis = analyze(reference(name))
    assert analysis.params == pytest.approx(params, rel=0.02)
    assert analysis.macs == pytest.approx(macs, rel=0.02)


def test_width_multiplier_scales_mobilenets_and_efficientnet_edgetpu_only() -> None:
    narrow = reference("efficientnet_edgetpu_s", width=0.25, num_classes=10, resolution=28)
    full = reference("efficientnet_edgetpu_s", num_classes=10, resolution=28)
    assert [b.out_channels for b in narrow.blocks] == [make_divisible(b.out_channels * 0.25) for b in full.blocks]
    assert [b.repeats for b in narrow.blocks] == [b.repeats for b in full.blocks]  # depth unchanged
    assert analyze(narrow).params < analyze(full).params / 8
    with pytest.raises(ArchError, match="only mobilenet_v1, mobilenet_v2, efficientnet_edgetpu_s"):
        reference("mobilenet_v3_large", width=0.5)
