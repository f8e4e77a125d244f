"""Importing the service, its CLI and the trainer's modules leaves TensorFlow unloaded: only training loads it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

LIGHT_MODULES = ["nas_service", "nas_service.api", "nas_service.cli", "nas_service.trainer",
                 "nas_service.trainer.datasets", "nas_service.trainer.training", "nas_service.services.training",
                 "nas_service.trainer.tflite_export", "latency_models.edgetpu_ops"]


@pytest.mark.parametrize("module", [m for m in LIGHT_MODULES if importlib.util.find_spec(m) is not None])
def test_import_leaves_tensorflow_out_of_sys_modules(module: str) -> None:
    script = textwrap.dedent(f"""
        import sys
        import {module}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print(loaded[:5])
        sys.exit(1 if loaded else 0)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"importing {module} loaded {run.stdout.strip()} {run.stderr[-500:]}"
