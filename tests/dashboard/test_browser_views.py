"""The dashboard's views a new user met: the new-job form's defaults and fields, a job that is not there, the
plot's axes on small and estimated jobs, and the comparison's legend. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from typing import Any

import pytest

from nas_service.spec import JobSpec
from tests.dashboard.conftest import ARTIFACTS, Served, nas
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


def wait_done(served: Served, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while (job := call(served, f"/jobs/{job_id}"))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    return job


def test_a_job_that_is_not_there_or_not_yours_says_so(browser: Any, served: Served) -> None:
    """From job N to job 999 (or another user's) the page says there is no such job; a fresh load too, with no
    download button to press."""
    env = {**os.environ, "NAS_DATABASE_URL": served.database_url}
    bob = nas("tokens", "create", "--user", "bob", "--quiet", env=env).strip()
    request = urllib.request.Request(f"{served.url}/api/v1/jobs", data=json.dumps(
        {"name": "bob's", "budget": {"trials": 1}, "training": {"scorer": "estimate"}}).encode(),
        headers={"Authorization": f"Bearer {bob}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        bobs = json.loads(response.read())["id"]
    mine = call(served, "/jobs", {"name": "mine", "budget": {"trials": 1}, "training": {"scorer": "estimate"}})["id"]
    wait_done(served, mine)
    page = logged_in(browser, served)
    base = page.url.split("#")[0]
    page.goto(f"{base}#/jobs/{mine}")
    page.wait_for_selector(f"#job-title:has-text('Job {mine}')")
    for missing in (999, bobs):
        page.goto(f"{base}#/jobs/{missing}")
        page.wait_for_selector(f"#view-missing:not([hidden]) h1:has-text('No job {missing} (or not yours)')")
        assert page.is_hidden("#view-job") and page.is_hidden("#download-front")
        assert f"job {missing} not found" in page.inner_text("#missing-detail")
    page.goto(f"{base}#/jobs/{mine}/candidates/99999")
    page.wait_for_selector(f"#view-missing:not([hidden]) h1:has-text('No candidate 99999 in job {mine} (or not "
                           "yours)')")
    page.goto(f"{base}#/jobs/999")
    page.reload()  # a fresh load of the address
    page.wait_for_selector("#view-missing:not([hidden]) h1:has-text('No job 999 (or not yours)')")
    assert page.is_hidden("#view-job") and page.is_hidden("#download-front")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-job-not-found.png"), full_page=True)
    assert page.errors == []


def test_axes_fit_a_one_trial_job_and_say_when_accuracy_is_estimated(browser: Any, served: Served) -> None:
    job = call(served, "/jobs", {"name": "one trial", "budget": {"trials": 1}, "training": {"scorer": "estimate"}})
    wait_done(served, job["id"])
    (member,) = call(served, f"/jobs/{job['id']}/front")["items"]
    page = logged_in(browser, served)
    page.goto(page.url.split("#")[0] + f"#/jobs/{job['id']}")
    page.wait_for_function("document.querySelector('#pareto-plot').dataset.points === '1'")
    axes = page.evaluate("""() => { const l = document.querySelector('#pareto-plot')._fullLayout;
        return { x: l.xaxis.range, y: l.yaxis.range, title: l.yaxis.title.text }; }""")
    assert 0 <= axes["y"][0] < member["accuracy"] < axes["y"][1] <= 1, axes  # not up to 1.5
    low, high = 10 ** axes["x"][0], 10 ** axes["x"][1]
    assert low < member["latency_ms"] < high and high / low < 1.3, axes  # not 0.2 to 10 ms
    assert axes["title"] == "accuracy (ESTIMATED, not trained)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-one-trial-job.png"), full_page=True)
    other = call(served, "/jobs", {"name": "second", "budget": {"trials": 3}, "training": {"scorer": "estimate"}})
    wait_done(served, other["id"])
    page.goto(page.url.split("#")[0] + f"#/compare?ids={job['id']},{other['id']}")
    page.wait_for_function("(document.querySelector('#compare-plot').data || []).length === 2")
    legend = page.evaluate("document.querySelector('#compare-plot').data.map((t) => t.name)")
    assert legend == [f"one trial (job {job['id']}) · estimated accuracy",
                      f"second (job {other['id']}) · estimated accuracy"]
    title = page.evaluate("document.querySelector('#compare-plot')._fullLayout.yaxis.title.text")
    assert title == "accuracy (dotted: ESTIMATED, not trained)"
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare-names.png"), full_page=True)
    assert page.errors == []
