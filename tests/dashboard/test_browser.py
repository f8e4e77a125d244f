"""The dashboard in a real browser: log in, submit a job, watch points arrive, open a candidate, download its file."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import median_latency_ms
from tests.dashboard.conftest import ARTIFACTS, Served

pytestmark = pytest.mark.browser

POINT_PIXEL = """() => {
  const gd = document.querySelector('#pareto-plot');
  const trace = gd.data.find((t) => t.name === 'Pareto front');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return [box.left + xa._offset + xa.l2p(xa.c2l(trace.x[0])), box.top + ya._offset + ya.l2p(ya.c2l(trace.y[0]))];
}"""


def logged_in(browser: Any, served: Served) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url)
    page.wait_for_url(re.compile(r"#/login$"))
    page.fill("#token", "nas_not_a_token")
    page.click("#login-form button")
    page.wait_for_selector("#login-error:has-text('invalid token')")
    page.fill("#token", served.token)
    page.click("#login-form button")
    page.wait_for_selector("#view-jobs:not([hidden])")
    assert page.inner_text("#whoami") == "alice"
    page.errors = errors  # type: ignore[attr-defined]
    return page


def submit_job(page: Any, trials: int) -> int:
    page.click("nav >> text=New job")
    page.wait_for_selector("#new-job-form select[name=space] option[value=edgetpu]", state="attached")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-new-job.png"), full_page=True)
    page.fill("#new-job-form input[name=name]", "from the browser")
    page.fill("#new-job-form input[name=trials]", str(trials))
    page.select_option("#new-job-form select[name=scorer]", "estimate")
    page.fill("#new-job-form input[name=max_latency_ms]", str(median_latency_ms()))
    page.click("#new-job-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def job(browser: Any, served: Served) -> tuple[Any, int]:
    page = logged_in(browser, served)
    job_id = submit_job(page, trials=12)
    # Live updates: the page polls while the job runs, so points arrive without a reload.
    page.wait_for_function("Number(document.querySelector('#pareto-plot').dataset.points || 0) > 0", timeout=180_000)
    page.wait_for_selector("#job-status:has-text('completed')", timeout=180_000)
    status = page.inner_text("#job-status")
    assert "edgetpu_small on edgetpu_usb · fashion_mnist_small" in status  # the form's defaults
    assert "ESTIMATED accuracy (not trained)" in status
    page.wait_for_function("Number(document.querySelector('#pareto-plot').dataset.points) === 12")
    return page, job_id


def test_job_page_shows_plot_front_and_hover(job: tuple[Any, int]) -> None:
    page, job_id = job
    traces = page.evaluate("document.querySelector('#pareto-plot').data.map(t => [t.name, t.type, t.x.length])")
    names = {name: (kind, n) for name, kind, n in traces}
    assert names["Pareto front"][0] == "scattergl" and names["Pareto front"][1] >= 1
    assert names["trials"][1] + names["stopped early"][1] + names["infeasible"][1] == 12
    assert names["infeasible"][1] >= 1
    assert page.locator("#front-table tbody tr").count() == names["Pareto front"][1]
    assert page.is_disabled("#download-front") and "estimates accuracy" in page.inner_text("#front-reason")
    # A real mouse hover over the first front point, at its pixel position.
    x, y = page.evaluate(POINT_PIXEL)
    page.mouse.move(x, y)
    page.wait_for_function("document.querySelector('#hover-arch').textContent.startsWith('r28_n10/')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-job.png"), full_page=True)
    page.mouse.click(x, y)  # a click on the point opens its candidate
    page.wait_for_url(re.compile(rf"#/jobs/{job_id}/candidates/\d+$"))
    page.wait_for_selector("#layer-table tbody tr")
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")  # the sortable trial table
    page.wait_for_function("document.querySelectorAll('#trial-table tbody tr').length === 12")
    page.click("#trial-table th[data-sort=latency_ms]")
    page.click("#trial-table th[data-sort=latency_ms]")  # again: descending
    cells = "[...document.querySelectorAll('#trial-table tbody tr td:nth-child(5)')].map(td => Number(td.textContent))"
    page.wait_for_function(f"(() => {{ const l = {cells}; return document.querySelector('#trial-table').dataset.order"
                           f" === 'desc' && l.length === 12 && l.every((x, i) => i === 0 || l[i - 1] >= x); }})()")
    latencies = page.evaluate(cells)
    assert latencies == sorted(latencies, reverse=True) and latencies[0] > latencies[-1]
    assert page.errors == []


def test_candidate_page_and_compare(job: tuple[Any, int]) -> None:
    page, job_id = job
    page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    page.wait_for_selector("#front-table tbody tr a")
    page.click("#front-table tbody tr a")
    page.wait_for_url(re.compile(rf"#/jobs/{job_id}/candidates/\d+$"))
    page.wait_for_selector("#layer-table tbody tr")
    assert page.inner_text("#candidate-arch").startswith("r28_n10/")
    assert page.locator("#latency-plot .main-svg").count() >= 1
    assert page.is_disabled("#download-tflite")  # estimate-scored: never exported, and the page says why
    assert "this job estimates accuracy" in page.inner_text("#download-reason")
    assert "accuracy ESTIMATED, not trained" in page.inner_text("#candidate-summary")
    summary = page.inner_text("#candidate-summary")  # the latency's interval, its profile and why it extrapolates
    assert re.search(r"\d\.\d{3} ± \d+%", summary) and "edgetpu_usb@" in summary and "extrapolated:" in summary
    assert "grey invoke + I/O overhead" in page.inner_text("#latency-legend")
    colours = page.evaluate("document.querySelector('#latency-plot').data.map(t => t.line && t.line.color)")
    assert "#7f8c8d" in colours  # the invoke+io row is drawn as overhead, not as parameter streaming
    page.wait_for_function("document.querySelectorAll('#segment-table tbody tr').length === 4")  # 4 TPUs by default
    assert "inferences/s" in page.inner_text("#segment-summary")
    page.select_option("#segment-devices", "2")
    page.wait_for_function("document.querySelectorAll('#segment-table tbody tr').length === 2")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-candidate.png"), full_page=True)
    page.goto(page.url.split("#")[0] + f"#/compare?ids={job_id}")
    page.wait_for_function("(document.querySelector('#compare-plot').data || []).length === 1")
    assert page.evaluate("document.querySelector('#compare-plot').data[0].name") == (
        f"from the browser (job {job_id}) · estimated accuracy")
    page.screenshot(path=str(ARTIFACTS / "dashboard-compare.png"), full_page=True)
    page.goto(page.url.split("#")[0] + "#/jobs")
    page.wait_for_selector(f"#jobs-table tr[data-job-id='{job_id}'] .status.completed")
    page.screenshot(path=str(ARTIFACTS / "dashboard-jobs.png"), full_page=True)
    assert page.errors == []


def test_cpu_fallback_candidates_are_marked_on_plot_and_front(job: tuple[Any, int], served: Served) -> None:
    """mobilenet_v3 with hard-swish leaves ops to the host CPU on the Edge TPU: purple triangles and an `on CPU`
    share in the front table."""
    from tests.dashboard.test_serve import call

    page, _ = job
    spec = {"space": "mobilenet_v3", "resolution": 32, "budget": {"trials": 8}, "training": {"scorer": "estimate"},
            "constraints": {"max_params": None}, "seed": 1}
    created = call(served, "/jobs", spec)
    page.goto(page.url.split("#")[0] + f"#/jobs/{created['id']}")
    page.wait_for_selector("#job-status:has-text('completed')", timeout=180_000)
    page.wait_for_function("Number(document.querySelector('#pareto-plot').dataset.points) === 8")
    traces = page.evaluate("document.querySelector('#pareto-plot').data.map(t => [t.name, t.x.length])")
    assert dict(traces)["partly on CPU"] >= 1
    front = call(served, f"/jobs/{created['id']}/front")["items"]  # the table fills after the plot: wait for it
    page.wait_for_function(f"document.querySelectorAll('#front-table tbody tr').length === {len(front)}")
    shares = page.evaluate("[...document.querySelectorAll('#front-table tbody tr td:nth-child(6)')]"
                           ".map(td => td.textContent)")
    got = [None if text == "–" else int(text.rstrip("%")) for text in shares]
    want = [100 * m["cpu_fraction"] if m["cpu_fraction"] else None for m in front]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w if w is None else g is not None and abs(g - w) <= 0.5 + 1e-9
    assert page.errors == []


def test_early_stopped_trials_are_drawn_apart(job: tuple[Any, int], served: Served) -> None:
    """Simulated 4-epoch training stops hopeless candidates: hollow markers of their own, and the header counts
    them."""
    from tests.dashboard.test_serve import call

    page, _ = job
    spec = {"budget": {"trials": 30}, "sampler": "random", "initial": ["small"], "seed": 3,
            "constraints": {"max_params": None},
            "training": {"scorer": "estimate", "epochs": 4, "simulate_seconds": 0.004}}
    created = call(served, "/jobs", spec)
    page.goto(page.url.split("#")[0] + f"#/jobs/{created['id']}")
    page.wait_for_selector("#job-status:has-text('completed')", timeout=180_000)
    page.wait_for_function("Number(document.querySelector('#pareto-plot').dataset.points) === 30")
    traces = {name: (n, symbol) for name, n, symbol in page.evaluate(
        "document.querySelector('#pareto-plot').data.map(t => [t.name, t.x.length, t.marker && t.marker.symbol])")}
    stopped = call(served, f"/jobs/{created['id']}")["trial_counts"].get("stopped", 0)
    assert stopped >= 1 and traces["stopped early"] == (stopped, "circle-open")
    assert f"{stopped} stopped early" in page.inner_text("#job-status")
    assert traces["failed"][1] == "diamond-open" and traces["infeasible"][1] == "x"
