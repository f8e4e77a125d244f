"""The dashboard's views a new user met: the new-job form's defaults and fields, a job that is not there, the
plot's axes on small and estimated jobs, and the comparison's legend. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import re
from typing import Any

import pytest

from nas_service.spec import JobSpec
from tests.dashboard.conftest import ARTIFACTS, Served
from tests.dashboard.test_browser import logged_in
from tests.dashboard.test_serve import call

pytestmark = pytest.mark.browser


def test_new_job_form_starts_from_the_spec_defaults_and_has_resolution_and_parameter_limit(
        browser: Any, served: Served) -> None:
    page = logged_in(browser, served)
    page.click("nav >> text=New job")
    page.wait_for_selector("#new-job-form select[name=resolution] option[value='28']", state="attached")
    defaults = JobSpec()
    form = page.evaluate("""() => { const f = document.querySelector('#new-job-form'); return {
        space: f.space.value, device: f.device.value, dataset: f.dataset.value, sampler: f.sampler.value,
        trials: f.trials.value, resolution: f.resolution.value, max_params: f.max_params.value,
        max_latency_ms: f.max_latency_ms.value, scorer: f.scorer.value, epochs: f.epochs.value, seed: f.seed.value,
        resolutions: [...f.resolution.options].map((o) => o.value) }; }""")
    assert form == {"space": defaults.space, "device": defaults.device, "dataset": defaults.dataset,
                    "sampler": defaults.sampler, "trials": str(defaults.budget.trials),
                    "resolution": str(defaults.resolution), "max_params": str(defaults.constraints.max_params),
                    "max_latency_ms": "", "scorer": defaults.training.scorer, "epochs": str(defaults.training.epochs),
                    "seed": str(defaults.seed), "resolutions": ["28", "32", "48", "64", ""]}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-new-job-defaults.png"), full_page=True)
    page.select_option("#new-job-form select[name=space]", "edgetpu")  # its own resolutions
    page.wait_for_function("document.querySelector('#new-job-form').resolution.options[0].value === '32'")
    page.select_option("#new-job-form select[name=space]", "edgetpu_small")
    page.select_option("#new-job-form select[name=resolution]", "48")
    page.fill("#new-job-form input[name=name]", "form fields")
    page.fill("#new-job-form input[name=trials]", "2")
    page.fill("#new-job-form input[name=max_params]", "300000")
    page.select_option("#new-job-form select[name=scorer]", "estimate")
    page.click("#new-job-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/\d+$"))
    spec = call(served, f"/jobs/{int(page.url.rsplit('/', 1)[1])}")["spec"]
    assert spec["resolution"] == 48 and spec["constraints"]["max_params"] == 300_000
    assert spec["constraints"]["max_latency_ms"] is None and spec["initial"] == list(defaults.initial)
    assert spec["training"]["batch_size"] == defaults.training.batch_size  # fields the form leaves to the defaults
    assert spec["budget"] == {"trials": 2, "wall_seconds": defaults.budget.wall_seconds}
    assert page.errors == []
