"""The Edge TPU calibration data, the structure for small networks, intervals and the extrapolation flag."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

import latency_models
from latency_models import load_profile, predict
from latency_models.published import sort_rows
from search_spaces import reference

DATA = Path(latency_models.__file__).parent / "data"
PUBLISHED = Path(__file__).parents[3] / "shared" / "data" / "edgetpu_published.csv"


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


def test_every_published_row_is_used_or_left_out_with_its_reason() -> None:
    used, excluded = _rows("edgetpu_calibration.csv"), _rows("edgetpu_excluded.csv")
    assert len(used) + len(excluded) == 142
    assert all(r["reason"] for r in excluded) and all(r["built_with"] for r in used)
    networks = defaultdict(set)
    for r in used:
        networks[r["device"]].add((r["reference"], r["input_size"]))
    # Inception-ResNet V2 is left out on both devices (faster than its streamed parameters can cross the link),
    # which leaves the USB desktop 13 networks.
    assert len(networks["edgetpu_usb"]) >= 13 and len(networks["edgetpu_devboard"]) >= 14
    if PUBLISHED.is_file():  # the sorting rules reproduce the committed files
        again_used, again_excluded = sort_rows(PUBLISHED)
        assert again_used == used and again_excluded == excluded


@pytest.mark.parametrize("device", ["edgetpu_usb", "edgetpu_devboard"])
def test_small_networks_cost_a_fraction_of_a_millisecond_to_invoke(device: str) -> None:
    profile = load_profile(device)
    assert profile.constants["overhead_ms"] < 0.5 and profile.constants["ms_per_layer"] < 0.01
    tiny, wide = reference("mobilenet_v2", 0.35, resolution=32), reference("mobilenet_v2", 1.4, resolution=32)
    assert predict(tiny, device).total_ms < 1.0
    assert predict(wide, device).total_ms > predict(tiny, device).total_ms


def test_estimates_carry_their_band_interval_and_extrapolation() -> None:
    profile = load_profile("edgetpu_usb")
    bands = {b["band"]: b["loo_rms_error"] for b in profile.fit["bands"]}
    inside = predict("mobilenet_v2")
    assert inside.interval_pct == bands["<3 ms"] and not inside.extrapolated
    assert inside.low_ms < inside.total_ms < inside.high_ms
    assert f"± {inside.interval_pct:.0f}%" in inside.summary()
    small = predict(reference("mobilenet_v2", 0.35, resolution=32))
    assert small.extrapolated and "fewer than any calibration network" in small.extrapolation[0]
    hard_swish = predict("mobilenet_v3_large")
    assert any("hswish" in reason for reason in hard_swish.extrapolation)
    data = json.loads(json.dumps(small.to_dict()))
    assert data["extrapolated"] is True and data["interval_pct"] == small.interval_pct


def _user_csv(path: Path, device: str = "edgetpu_usb") -> Path:
    """A user's own measurements of three candidates (architecture strings), 1.1 ms per 10 MMACs or so."""
    from search_spaces import encode

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["reference", "device", "latency_ms"])
        for width, ms in ((0.35, 0.8), (0.75, 1.4), (1.0, 1.9), (1.4, 2.6)):
            writer.writerow([encode(reference("mobilenet_v2", width, resolution=96)), device, ms])
    return path


def test_calibrate_takes_a_users_csv_alone_or_with_the_published_rows(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nas_service.cli import app

    runner = CliRunner()
    user = _user_csv(tmp_path / "mine.csv")
    alone, both = tmp_path / "alone.json", tmp_path / "both.json"
    result = runner.invoke(app, ["latency", "calibrate", str(user), "--device", "edgetpu_usb", "--out", str(alone)])
    assert result.exit_code == 0, result.output
    assert "4 networks" in result.output
    result = runner.invoke(app, ["latency", "calibrate", str(user), "--device", "edgetpu_usb", "--out", str(both),
                                 "--with-published"])
    assert result.exit_code == 0, result.output
    assert "17 networks" in result.output
    fits = [json.loads(p.read_text()) for p in (alone, both)]
    assert fits[0]["fit"]["rows"] == 4 and fits[1]["fit"]["rows"] == 4 + 29  # the published USB rows
    assert fits[0]["version"] != fits[1]["version"] != load_profile("edgetpu_usb").version
    bad = tmp_path / "bad.csv"
    bad.write_text("reference,device,latency_ms\nmobilenet_v2,edgetpu_usb,-1\n")
    result = runner.invoke(app, ["latency", "calibrate", str(bad), "--device", "edgetpu_usb", "--out",
                                 str(tmp_path / "x.json")])
    assert result.exit_code != 0 and "is not a positive number" in result.output + str(result.exception)


def test_a_standalone_softmax_is_an_op_the_calibration_networks_have() -> None:
    """A .tflite runs the softmax its Keras model fused into the dense layer as an op of its own."""
    from latency_models.features import layer_table
    from latency_models.uncertainty import extrapolation
    from search_spaces.analysis import Layer

    layers = (Layer("conv", "conv2d", (224, 224, 3), (112, 112, 32), kernel=3, stride=2, weights=864,
                    macs=112 * 112 * 864 * 400),
              Layer("pool", "mean", (112, 112, 32), (32,)),
              Layer("fc", "fully_connected", (32,), (10,), weights=320, bias=True, macs=320),
              Layer("softmax", "softmax", (10,), (10,)))
    assert extrapolation(layer_table(layers), 0, load_profile("edgetpu_usb")) == ()


def test_a_published_row_faster_than_its_parameters_can_stream_is_left_out() -> None:
    from latency_models.published import link_bound_reason

    # Inception-ResNet V2 streams 48 MB beyond the cache: at least 96 ms at 500 MB/s, published at 57 ms.
    reason = link_bound_reason("keras.applications.InceptionResNetV2", 299, None, 57.0)
    assert reason is not None and "500 MB/s" in reason
    assert link_bound_reason("keras.applications.InceptionResNetV2", 299, None, 120.0) is None
    assert link_bound_reason("keras.applications.VGG16", 224, None, 296.0) is None  # 130 MB: ~440 MB/s
    left_out = [r for r in _rows("edgetpu_excluded.csv") if "line rate" in r["reason"]]
    assert {r["model"] for r in left_out} == {"Inception-ResNet V2"}


def _unet(size: int) -> tuple[object, object]:
    from latency_models.features import layer_table
    from latency_models.networks import network_layers

    layers = network_layers("build.unet_mobilenet_v2", size)
    return layers, layer_table(layers)


def test_a_transposed_convolution_runs_as_one_convolution_per_output_phase() -> None:
    from latency_models import features as f

    layers, table = _unet(128)
    transposed = [i for i, op in enumerate(table.ops) if op == "transpose_conv"]
    assert len(transposed) == 5 and all((layers[i].kernel, layers[i].stride) == (3, 2) for i in transposed)
    rows = table.rows[transposed]
    cin = [layers[i].input_shape[-1] for i in transposed]
    # 3x3 at stride 2: four phases of at most 2x2 taps, so 4 * cin per output position (the op needs 9/4 * cin)
    assert rows[:, f.REDUCTION] == pytest.approx([4 * c for c in cin])
    occupied = rows[:, f.POSITIONS] * rows[:, f.REDUCTION] * rows[:, f.OUT_CHANNELS]
    assert occupied == pytest.approx(16 / 9 * rows[:, f.MACS])


def test_long_held_tensors_spill_only_when_the_working_set_exceeds_the_activation_memory() -> None:
    import dataclasses

    from latency_models import edgetpu
    from latency_models import features as f
    from latency_models.features import layer_table

    profile = load_profile("edgetpu_usb")
    capacity = profile.fixed["activation_bytes"]
    for size, spills in ((128, False), (256, True)):
        layers, table = _unet(size)
        held = table.rows[:, f.HELD_PEAK]
        assert (held > 0).sum() == 4  # the encoder's four skip taps, read by the decoder's concatenations
        assert bool((held > capacity).any()) is spills
        # the same layers as a chain (no graph): nothing is held, and the price drops by the spill alone
        chain = layer_table(tuple(dataclasses.replace(la, inputs=None) for la in layers))
        assert not chain.rows[:, f.HELD_PEAK].any()
        with_graph, without = (float(edgetpu.estimate(t, profile).total_ms) for t in (table, chain))
        spilled_mb = 2e-6 * table.rows[held > capacity, f.OUT_ELEMENTS].sum()
        assert with_graph - without == pytest.approx(profile.constants["ms_per_mb_link"] * spilled_mb)
    # residual shortcuts are read again within their block: never held
    from latency_models.networks import network_layers

    mobilenet = layer_table(network_layers("keras.applications.MobileNetV2", 224))
    assert any(len(i) == 2 for i in mobilenet.inputs) and not mobilenet.rows[:, f.HELD_PEAK].any()


def test_the_host_reads_the_output_of_a_network_the_tpu_runs_to_its_end() -> None:
    from latency_models import edgetpu
    from latency_models import features as f
    from latency_models.features import layer_table
    from latency_models.networks import network_layers

    _, unet = _unet(128)
    ssd = layer_table(network_layers("build.ssd_mobilenet_v1", 300))
    for device in ("edgetpu_usb", "edgetpu_devboard"):
        profile = load_profile(device)
        c = profile.constants
        # a 128x128x3 mask, read by the host at its element rate on top of the transfer
        output = unet.rows[-1, f.OUT_ELEMENTS]
        assert output == 128 * 128 * 3 and edgetpu.first_cpu_layer(unet, profile) == len(unet.ops)
        io = edgetpu.estimate(unet, profile).layers[0]
        assert io.name == "invoke+io"
        assert io.ms == pytest.approx(c["overhead_ms"] + c["ms_per_mb_io"] * (unet.input_bytes + output) * 1e-6
                                      + c["host_ms_per_melement"] * output * 1e-6)
        # where the postprocess falls back, the CPU op reads the TPU's output itself: no second read
        last_tpu = edgetpu.first_cpu_layer(ssd, profile) - 1
        assert 0 <= last_tpu < len(ssd.ops) - 1
        io = edgetpu.estimate(ssd, profile).layers[0]
        transfer_mb = (ssd.input_bytes + ssd.rows[last_tpu, f.OUT_ELEMENTS]) * 1e-6
        assert io.ms == pytest.approx(c["overhead_ms"] + c["ms_per_mb_io"] * transfer_mb)
    # the Dev Board's Cortex-A53 reads it several times slower than a desktop core
    usb, devboard = (edgetpu.estimate(unet, load_profile(d)).layers[0].ms for d in ("edgetpu_usb", "edgetpu_devboard"))
    assert devboard > 3 * usb
