"""`nas spaces list/show` as a user sees them, piped (not a terminal), and piped `nas arch show`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas_service.cli import app
from nas_service.cli.errors import run_cli
from search_spaces import analyze, encode, load_space, reference


def _nas(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    code = run_cli(app)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_space_with_its_size(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _nas(monkeypatch, capsys, "spaces", "list")
    assert code == 0
    for name in ("edgetpu", "mobilenet_v2", "mobilenet_v3"):
        space = load_space(name)
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert f"{space.size():,}" in row and space.description in row  # piped: nothing truncated


def test_show_lists_stage_choices_parameters_and_size(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _nas(monkeypatch, capsys, "spaces", "show", "edgetpu")
    assert code == 0
    space = load_space("edgetpu")
    assert f"size: {space.size():,}" in out
    stage1 = next(line for line in out.splitlines() if line.startswith("│     1 │"))
    assert "er ir" in stage1 and "1 3 3.2 4 6" in stage1 and "8 16 24 32" in stage1
    assert f"parameters ({len(space.param_names())}): resolution, stem_width, s1_type," in out
    assert space.small in out and "efficientnet_edgetpu_l" in out


def test_show_json_is_the_space_summary(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _nas(monkeypatch, capsys, "spaces", "show", "mobilenet_v3", "--json")
    assert code == 0
    shown = json.loads(out)
    sizes = shown.pop("random_members")
    assert shown == json.loads(json.dumps(load_space("mobilenet_v3").to_dict()))
    assert sizes["n"] == 1000 and sizes["max_params"] == 700_000 and 0 <= sizes["feasible_share"] <= 1


def test_show_says_how_many_random_members_fit_the_parameter_limit(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The default job's space keeps most random samples trainable under its 700k-parameter limit."""
    code, out, _ = _nas(monkeypatch, capsys, "spaces", "show", "edgetpu_small", "--json")
    assert code == 0
    sizes = json.loads(out)["random_members"]
    space = load_space("edgetpu_small")
    params = sorted(analyze(a).params for a in space.random_members(1000, resolution=28))
    assert sizes["feasible_share"] == round(sum(p <= 700_000 for p in params) / 1000, 3) >= 0.6
    assert sizes["params_p50"] == params[500] and sizes["resolution"] == 28
    code, out, _ = _nas(monkeypatch, capsys, "spaces", "show", "edgetpu", "--max-params", "2000000")
    assert code == 0 and "within 2,000,000 parameters (max_params)" in out


def test_unknown_space_is_one_line_without_traceback() -> None:
    result = subprocess.run([sys.executable, "-c", "from nas_service.cli import main; main()", "spaces", "show",
                             "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "unknown search space 'nope': expected one of edgetpu, edgetpu_small, mobilenet_v2, mobilenet_v3" \
        in result.stderr


def test_piped_arch_show_keeps_whole_columns_and_the_whole_string(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _nas(monkeypatch, capsys, "arch", "show", "mobilenet_v2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == encode(reference("mobilenet_v2"))
    assert "…" not in out and "depthwise_conv2d" in out and "kernel/stride" in out
