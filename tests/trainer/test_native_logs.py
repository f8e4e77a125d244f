"""TensorFlow's and LiteRT's C++ log lines stay out of `nas train` and `nas search` unless `--verbose`."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from search_spaces import encode, load_space

ROOT = Path(__file__).resolve().parents[2]
NAS = (sys.executable, "-c", "from nas_service.cli import main; main()")
NOISE = ("oneDNN custom operations", "This TensorFlow binary is optimized", "fully_quantize", "XNNPACK", "W0000",
         "I0000", "absl::InitializeLog")

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NAS_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([*NAS, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
                          check=False)


def noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in NOISE)]


@pytest.mark.long  # real training, half a minute or more: `make test-long`
def test_train_and_search_print_no_native_log_lines_unless_verbose(tmp_path: Path) -> None:
    arch = encode(load_space("edgetpu_small").default_small(10).with_resolution(28))
    train = ("train", arch, "--epochs", "1", "--dataset", "digits")
    search = ("search", "--trials", "1", "--epochs", "1", "--initial", "small", "--dataset", "digits",
              "--concurrency", "1", "--db", f"sqlite:///{tmp_path / 'nas.db'}")
    with ThreadPoolExecutor(3) as pool:
        quiet_train, loud_train, quiet_search = pool.map(lambda a: run(tmp_path, *a),
                                                         [train, (*train, "--verbose"), search])
    for done in (quiet_train, loud_train, quiet_search):
        assert done.returncode == 0, done.stderr[-2000:]
    assert "top-1 float" in quiet_train.stdout and "Pareto front of job 1" in quiet_search.stdout
    assert noise(quiet_train.stdout + quiet_train.stderr) == []
    assert noise(quiet_search.stdout + quiet_search.stderr) == []
    assert noise(loud_train.stderr), "with --verbose the native lines show (so the check above can fail)"
