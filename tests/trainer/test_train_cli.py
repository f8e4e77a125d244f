"""`nas train` and `nas export ARCH` as a user runs them: JSON for scripts, one-line errors, a written .tflite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nas_service.cli import app
from nas_service.cli.errors import run_cli

TINY = "r16_n10/cn_k3_s2_c8_relu/er_k3_s1_e2_c8_relu/ir_k3_s2_e2_c16_relu/head_relu"


def _nas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    code = run_cli(app)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.tf
def test_train_json_reports_float_and_int8_accuracy(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _nas(monkeypatch, capsys, "train", TINY, "--epochs", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["epochs"] == 2 and report["seconds"] > 0
    assert 0.2 < report["accuracy"] <= 1 and 0.2 < report["int8_accuracy"] <= 1
    assert report["export"]["path"] == ""  # no --out: the file was temporary


@pytest.mark.tf
def test_export_arch_writes_the_file_and_the_edgetpu_report(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "models" / "tiny.tflite"
    code, out, err = _nas(monkeypatch, capsys, "export", TINY, "--dataset", "digits", "--epochs", "1",
                          "--out", str(out_file))
    assert code == 0, err
    assert out_file.is_file() and f"wrote {out_file}" in out
    assert "Edge TPU: every op maps to the TPU" in out and "edgetpu_compiler:" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--epochs", "0"], "training budget of 0 epochs is out of range"),
    (["--batch-size", "5000"], "batch size 5000 is out of range"),
])
def test_errors_are_one_line_before_any_training(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 args: list[str], message: str) -> None:
    code, out, err = _nas(monkeypatch, capsys, "train", TINY, *args)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and message in err
