"""Networks over one Edge TPU's parameter cache, pipelined over N = 1, 2, 4 TPUs by each strategy.

Per network: its parameter bytes, then per N and strategy the predicted end-to-end latency, slowest
stage, throughput and streamed bytes; per N the ratio of the params strategy's slowest stage (what
`edgetpu_compiler --num_segments` balances) to the latency strategy's (at least 1: the latency
strategy is an exact min-max over the same cut points). Networks: ResNet-50, Inception V3 and VGG16
(keras.applications, built untrained, read by the Keras reader), EfficientNet-EdgeTPU-L, and the
largest of 2,000 random members of the `edgetpu` space at 224 px. With `--exact`, three networks are
converted to full int8, split at both strategies' cuts into real .tflite segments, chained in LiteRT
and compared with the whole model on random int8 inputs (identical: true means every output byte).

    .venv/bin/python bench/segmentation.py [--device edgetpu_usb] [--exact | --only-exact]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latency_models import edgetpu, load_profile, predict, segment
from latency_models.features import layer_table
from latency_models.pipeline import STRATEGIES, segment_table
from latency_models.predictors import table_of
from search_spaces import load_space, reference

KERAS_NETWORKS = {"ResNet-50": ("ResNet50", 224), "Inception V3": ("InceptionV3", 299), "VGG16": ("VGG16", 224)}


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "segmentation", **fields}), flush=True)


def networks() -> dict[str, Any]:
    import keras

    from latency_models.readers.keras_reader import read_keras

    found: dict[str, Any] = {}
    for label, (cls, size) in KERAS_NETWORKS.items():
        found[label] = read_keras(getattr(keras.applications, cls)(weights=None, input_shape=(size, size, 3)))
        keras.backend.clear_session()
    found["EfficientNet-EdgeTPU-L"] = reference("efficientnet_edgetpu_l")
    members = load_space("edgetpu").random_members(2000, resolution=224, seed=0)
    largest = sorted(members, key=lambda a: predict(a).on_chip_param_bytes + predict(a).streamed_param_bytes)[-3:]
    for rank, arch in enumerate(reversed(largest), 1):
        found[f"edgetpu space, largest #{rank}"] = arch
    return found


def profile(label: str, model: Any, device: str) -> None:
    table = layer_table(model) if isinstance(model, tuple) else table_of(model)
    device_profile = load_profile(device)
    whole = edgetpu.estimate(table, device_profile)
    emit(network=label, layers=len(table.names), param_mb=round(float(table.param_bytes.sum()) / 1e6, 2),
         single_tpu_ms=round(whole.total_ms, 3), streamed_mb_on_one_tpu=round(whole.streamed_param_bytes / 1e6, 2))
    for n in (1, 2, 4):
        cuts = {}
        for strategy in STRATEGIES:
            start = time.perf_counter()
            cut = cuts[strategy] = segment_table(table, n, device_profile, strategy)
            emit(network=label, devices=n, strategy=strategy, end_to_end_ms=round(cut.end_to_end_ms, 3),
                 slowest_stage_ms=round(cut.slowest_stage_ms, 3), throughput_per_s=round(cut.throughput_per_s, 1),
                 streamed_mb=round(sum(s.streamed_param_bytes for s in cut.segments) / 1e6, 2),
                 cut_after=list(cut.cut_after), seconds=round(time.perf_counter() - start, 4))
        emit(network=label, devices=n, params_over_latency_slowest_stage=round(
            cuts["params"].slowest_stage_ms / cuts["latency"].slowest_stage_ms, 3),
             throughput_gain_over_one_tpu=round(cuts["latency"].throughput_per_s * whole.total_ms / 1000, 2))


def exact(device: str) -> None:
    from latency_models.tflite_split import chain_matches, split_tflite
    from nas_service.trainer.tflite_export import convert_int8
    from search_spaces import decode
    from search_spaces.keras_builder import build_keras

    archs = {"MobileNetV2 0.5 @96": reference("mobilenet_v2", 0.5, resolution=96),
             "EfficientNet-EdgeTPU-S 0.5 @96": reference("efficientnet_edgetpu_s", 0.5, resolution=96),
             "edgetpu-space residual candidate @96": decode(
                 "r96_n10/cn_k3_s2_c32_relu/er_k3_s1_e4_c24_relu/er_k3_s1_e4_c24_relu/ir_k5_s2_e6_c40_relu/"
                 "ir_k5_s1_e6_c40_relu/ir_k3_s2_e6_c80_relu/ir_k3_s1_e6_c80_relu/head_c1280_relu")}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="nas-segments-") as tmp:
        for label, arch in archs.items():
            images = rng.uniform(-1, 1, (16, 96, 96, 3)).astype(np.float32)
            model = convert_int8(build_keras(arch.with_classes(10)), images, num_samples=16)
            path = Path(tmp) / "model.tflite"
            path.write_bytes(model)
            for n in (2, 4):
                for strategy in ("latency", "params"):
                    cut = segment(path, n, device, strategy)
                    parts = split_tflite(model, [s.stop for s in cut.segments])
                    emit(exact=label, devices=n, strategy=strategy, ops=cut.segments[-1].stop,
                         segment_bytes=[len(p) for p in parts], model_bytes=len(model),
                         identical=chain_matches(model, parts, samples=32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="edgetpu_usb")
    parser.add_argument("--exact", action="store_true", help="Also split real int8 files and compare outputs.")
    parser.add_argument("--only-exact", action="store_true", help="Only the real splits.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.only_exact:
        for label, model in networks().items():
            profile(label, model, args.device)
    if args.exact or args.only_exact:
        exact(args.device)


if __name__ == "__main__":
    main()
