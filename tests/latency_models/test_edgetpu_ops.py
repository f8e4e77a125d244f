"""The Edge TPU op-support rules: the first unmappable op and everything after it fall back to the CPU."""

from __future__ import annotations

from latency_models.edgetpu_ops import OpDetails, cpu_fallback, op_key


def test_tflite_and_analysis_names_share_one_key() -> None:
    assert op_key("CONV_2D") == op_key("conv2d") == op_key("Conv2D")
    assert op_key("DEPTHWISE_CONV_2D") == op_key("depthwise_conv2d")


def test_fully_int8_supported_graph_stays_on_the_tpu() -> None:
    ops = [OpDetails("CONV_2D", ("int8", "int8", "int32", "int8"), ((1, 32, 32, 3), (1, 16, 16, 8))),
           OpDetails("mean", ("int8",)), OpDetails("FULLY_CONNECTED", ("int8",)), OpDetails("SOFTMAX", ("int8",))]
    assert cpu_fallback(ops) == []


def test_first_unsupported_op_and_every_later_op_run_on_the_cpu() -> None:
    ops = [OpDetails("CONV_2D"), OpDetails("HARD_SWISH"), OpDetails("CONV_2D"), OpDetails("SOFTMAX")]
    fallback = cpu_fallback(ops)
    assert [(i, op) for i, op, _ in fallback] == [(1, "HARD_SWISH"), (2, "CONV_2D"), (3, "SOFTMAX")]
    assert "not in the Edge TPU op table" in fallback[0][2]
    assert "follows HARD_SWISH at index 1" in fallback[1][2]


def test_float_tensors_dynamic_shapes_and_high_rank_fall_back() -> None:
    assert "float32" in cpu_fallback([OpDetails("CONV_2D", ("float32",))])[0][2]
    assert "dynamic" in cpu_fallback([OpDetails("CONV_2D", ("int8",), ((-1, 8, 8, 3),))])[0][2]
    assert "3 innermost" in cpu_fallback([OpDetails("ADD", ("int8",), ((2, 4, 8, 8, 3),))])[0][2]
