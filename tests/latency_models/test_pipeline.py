"""Pipeline segmentation over several Edge TPUs: exact dynamic programmes, valid cuts, multi-TPU profiles."""

from __future__ import annotations

import numpy as np
import pytest

import latency_models
from latency_models import SegmentationError, edgetpu, load_profile, predict, predict_total_ms, profile_names, segment
from latency_models.features import TableBatch
from latency_models.predictors import table_of
from search_spaces import load_space, reference
from search_spaces.analysis import layer_inputs

NETWORKS = ["mobilenet_v2", "efficientnet_edgetpu_s", "efficientnet_edgetpu_l", "mobilenet_v1"]
HARD_SWISH_LATE = ("r96_n10/cn_k3_s2_c16_relu/ir_k3_s1_e4_c16_relu/ir_k3_s2_e4_c24_relu/ir_k3_s2_e4_c40_relu/"
                   "ir_k3_s2_e4_c40_hswish/head_c256_relu")
"""The Edge TPU compiler maps no HARD_SWISH: the last block's and everything after it run on the host CPU."""


def _crossing_producers(model: str, boundary: int) -> set[int]:
    """Layers (-1: the input) whose outputs are read on both sides of `boundary`, from the graph directly."""
    graph = layer_inputs(latency_models.read_layers(model))
    return {p for c, producers in enumerate(graph) if c >= boundary for p in producers if p < boundary}


def test_running_totals_price_every_prefix_as_a_network_of_its_own() -> None:
    table = table_of("efficientnet_edgetpu_l")  # over the cache: streaming and prefetch terms in play
    profile = load_profile("edgetpu_usb")
    running = edgetpu.running_totals(table, profile)
    for k in (1, 7, 40, 80, len(table.names)):
        prefix = table.part(0, k, table.input_bytes)
        assert running[k - 1] == pytest.approx(edgetpu.batch_totals(TableBatch.of([prefix]), profile)[0], rel=1e-12)


@pytest.mark.parametrize("model", NETWORKS)
def test_one_device_is_the_whole_network(model: str) -> None:
    for strategy in ("latency", "params", "end_to_end"):
        cut = segment(model, 1, strategy=strategy)
        assert cut.end_to_end_ms == pytest.approx(predict(model).total_ms, rel=1e-12)
        assert len(cut.segments) == 1 and cut.throughput_per_s == pytest.approx(1000 / cut.end_to_end_ms)


@pytest.mark.parametrize("model", NETWORKS)
@pytest.mark.parametrize("devices", [2, 4])
def test_each_strategy_is_best_at_what_it_minimises(model: str, devices: int) -> None:
    cuts = {s: segment(model, devices, strategy=s) for s in ("latency", "params", "end_to_end")}
    assert cuts["latency"].slowest_stage_ms <= min(c.slowest_stage_ms for c in cuts.values()) + 1e-9
    assert cuts["end_to_end"].end_to_end_ms <= min(c.end_to_end_ms for c in cuts.values()) + 1e-9
    assert max(s.param_bytes for s in cuts["params"].segments) <= min(
        max(s.param_bytes for s in c.segments) for c in cuts.values())
    for cut in cuts.values():
        assert [s.start for s in cut.segments[1:]] == [s.stop for s in cut.segments[:-1]]
        assert cut.segments[0].start == 0 and cut.segments[-1].stop == len(table_of(model).names)
        for s in cut.segments[1:]:  # one tensor crosses each cut, and it is what the segment is handed
            crossing = _crossing_producers(model, s.start)
            assert len(crossing) == 1
            assert s.input_bytes == int(np.prod(latency_models.read_layers(model)[crossing.pop()].output_shape))


def test_a_strategy_that_minimises_the_slowest_stage_beats_the_compiler_on_a_network_over_the_cache() -> None:
    by_params = segment("efficientnet_edgetpu_l", 4, strategy="params")
    by_latency = segment("efficientnet_edgetpu_l", 4, strategy="latency")
    assert by_latency.slowest_stage_ms < 0.8 * by_params.slowest_stage_ms
    assert predict("efficientnet_edgetpu_l").streamed_param_bytes > 0
    assert sum(s.streamed_param_bytes for s in by_params.segments) == 0  # a quarter each fits every cache


def test_the_cpu_fallback_tail_stays_in_the_last_segment() -> None:
    whole = predict(HARD_SWISH_LATE)
    assert whole.cpu_fallback_ops[0] == "hard_swish"
    for devices in (2, 3):
        cut = segment(HARD_SWISH_LATE, devices)
        assert cut.segments[-1].cpu_fallback_ops == whole.cpu_fallback_ops
        assert all(not s.cpu_fallback_ops for s in cut.segments[:-1])


def test_bad_requests_are_refused_with_the_reason() -> None:
    with pytest.raises(SegmentationError, match="9 devices: expected 1 to 8"):
        segment("mobilenet_v2", 9)
    with pytest.raises(SegmentationError, match="unknown segmentation strategy 'fast'"):
        segment("mobilenet_v2", 2, strategy="fast")
    with pytest.raises(SegmentationError, match="is a cpu device"):
        segment("mobilenet_v2", 2, device="cpu_litert")


def test_a_network_with_fewer_cut_points_than_devices_uses_fewer_tpus() -> None:
    """As the multi-TPU profiles price it: every place to cut is used, the other TPUs idle."""
    stem_cpu = segment("mobilenet_v3_large", 2)  # hard-swish in the stem: the CPU runs the rest, no place to cut
    assert stem_cpu.devices == 2 and stem_cpu.devices_used == 1 and stem_cpu.to_dict()["devices_used"] == 1
    assert stem_cpu.end_to_end_ms == predict("mobilenet_v3_large").total_ms
    early = "r32_n10/cn_k3_s2_c16_relu/er_k3_s1_e3_c16_relu/er_k3_s2_e4_c24_relu/ir_k3_s2_e4_c32_hswish/head_c128_relu"
    few = segment(early, 8)  # 4 places to cut before the hard-swish block
    assert few.devices == 8 and few.devices_used == 5 and len(few.cut_after) == 4
    assert segment(early, 5).segments == few.segments


def test_multi_tpu_profiles_price_the_pipeline() -> None:
    names = [n for n in profile_names() if n.startswith("edgetpu_usb_x")]
    assert names == ["edgetpu_usb_x2", "edgetpu_usb_x2_pipelined", "edgetpu_usb_x4", "edgetpu_usb_x4_pipelined"]
    space = load_space("edgetpu")
    rng = np.random.default_rng(0)
    choices = {k: v for k, v in space.choices().items() if len(v) > 1 and k != "resolution"}
    archs = [space.build({k: v[rng.integers(len(v))] for k, v in choices.items()}, num_classes=10, resolution=96)
             for _ in range(6)] + [reference("efficientnet_edgetpu_l", resolution=96)]
    for name in names:
        totals = predict_total_ms(archs, device=name)
        assert totals == [predict(a, device=name).total_ms for a in archs]
    big = archs[-1]
    assert predict(big, device="edgetpu_usb_x4_pipelined").total_ms == pytest.approx(
        segment(big, 4, strategy="latency").slowest_stage_ms)
    assert predict(big, device="edgetpu_usb_x2").total_ms == pytest.approx(
        segment(big, 2, strategy="end_to_end").end_to_end_ms)
    # at 96 px its streamed parameters outlast its compute; over two TPUs they are all cached
    assert predict(big, device="edgetpu_usb_x2").total_ms < predict(big).total_ms
    assert load_profile("edgetpu_usb_x4").version != load_profile("edgetpu_usb").version
