"""The dashboard's "Download int8 TFLite" button on a really trained candidate, served from the working directory
with the default relative artifacts directory (as `make run` and `nas serve` run)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.dashboard.conftest import ARTIFACTS, Served, serving
from tests.dashboard.test_browser import logged_in
from tests.dashboard.test_serve import call

pytestmark = [pytest.mark.browser, pytest.mark.tf, pytest.mark.slow]

TRAINED = {"name": "trained", "budget": {"trials": 1}, "initial": ["small"], "seed": 0,
           "training": {"scorer": "train", "epochs": 1, "train_images": 200, "concurrency": 1}}


@pytest.fixture(scope="module")
def served_in_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve-relative")
    with serving(f"sqlite:///{root / 'nas.db'}", root, in_root=True) as served:
        yield served


@pytest.mark.long  # real training, half a minute or more: `make test-long`
def test_download_button_saves_a_model_that_runs(browser: Any, served_in_root: Served) -> None:
    from latency_models.litert import make_interpreter

    served = served_in_root
    job = call(served, "/jobs", TRAINED)
    deadline = time.monotonic() + 300
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = call(served, f"/jobs/{job['id']}")
    assert job["status"] == "completed", job
    cid = call(served, f"/jobs/{job['id']}/front")["items"][0]["candidate_id"]
    page = logged_in(browser, served)
    page.goto(page.url.split("#")[0] + f"#/jobs/{job['id']}/candidates/{cid}")
    page.wait_for_selector("#download-tflite:not([disabled])")
    with page.expect_download() as download:
        page.click("#download-tflite")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-download-tflite.png"), full_page=True)
    assert page.inner_text("#download-error") == ""
    assert download.value.suggested_filename == f"candidate_{cid}.tflite"
    interpreter = make_interpreter(Path(download.value.path()).read_bytes())
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.int8 and list(detail["shape"]) == [1, 28, 28, 3]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.int8))
    interpreter.invoke()
    assert page.errors == []
