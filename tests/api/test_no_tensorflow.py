"""The API process never imports TensorFlow: not on import, not building the app, not pricing a string or a file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_api_without_tensorflow(tmp_path: Path, tflite: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Import the API, build the app and price a string (and `tflite`, if given) in a fresh interpreter;
    exits non-zero when TensorFlow or Keras got imported."""
    script = textwrap.dedent(f"""
        import sys
        import nas_service.api
        from fastapi.testclient import TestClient
        from nas_service.api import create_app
        from nas_service.config import Settings
        from nas_service.db import make_engine, session_factory, upgrade_head
        from nas_service.services import tokens

        url = "sqlite:///{tmp_path}/nas.db"
        engine = make_engine(url)
        upgrade_head(engine)
        with session_factory(engine)() as session:
            headers = {{"Authorization": "Bearer " + tokens.create_token(session, "alice").token}}
        client = TestClient(create_app(Settings(database_url=url)))
        predicted = client.post("/api/v1/latency/predict", json={{"arch": "mobilenet_v2"}}, headers=headers)
        assert predicted.status_code == 200
        created = client.post("/api/v1/jobs", json={{"training": {{"scorer": "estimate"}}}}, headers=headers)
        assert created.status_code == 201
        assert client.get("/api/v1/spaces", headers=headers).status_code == 200
        tflite = {str(tflite) if tflite else None!r}
        if tflite:
            with open(tflite, "rb") as f:
                priced = client.post("/api/v1/latency/predict-tflite", files={{"file": ("m.tflite", f.read())}},
                                     headers=headers)
            assert priced.status_code == 200, priced.text
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print(loaded)
        sys.exit(1 if loaded else 0)
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_api_keeps_tensorflow_out_of_sys_modules(tmp_path: Path) -> None:
    result = run_api_without_tensorflow(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
