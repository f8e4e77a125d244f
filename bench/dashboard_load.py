"""Page load of the dashboard's job page for a 10,000-trial job in headless Chromium.

Measured from navigation start until the Pareto plot is drawn and interactive, as
`performance.now()` in the page: cold (a fresh browser context each run, nothing cached, Plotly's
1.6 MB gl2d bundle downloaded and compiled) and warm (the same context again, as a returning user).
Baselines, measured in the same run against the same server: the same page with Plotly's full 4.8 MB
bundle (from the `plotly` Python package) in place of the partial one, and the row-oriented way (what
optuna-dashboard does: every trial as a JSON object with its architecture string, paged in, drawn as
an SVG scatter). Target: under 2 s.

    .venv/bin/python bench/dashboard_load.py [--trials 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import prepare, server, sqlite_db  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_MS = 2000.0

PLOTLY_URL = "/static/vendor/plotly-gl2d-3.7.0.min.js"
BASELINE_PAGE = """<!doctype html><html><head><script src="PLOTLY_URL"></script></head><body>
<div id="plot" style="width:1200px;height:520px"></div>
<script>
(async () => {
  const headers = {Authorization: "Bearer TOKEN"};
  let items = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await (await fetch(`/api/v1/jobs/JOB/trials?limit=1000&offset=${offset}`, {headers})).json();
    items = items.concat(page.items);
    if (offset + 1000 >= page.total) break;
  }
  await Plotly.newPlot("plot", [{type: "scatter", mode: "markers", x: items.map((t) => t.latency_ms),
    y: items.map((t) => t.accuracy), text: items.map((t) => t.arch)}], {hovermode: "closest"});
  window.renderedMs = performance.now();
})();
</script></body></html>"""


def payload_bytes(port: int, path: str, token: str, gzip: bool) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={
        "Authorization": f"Bearer {token}", "Accept-Encoding": "gzip" if gzip else "identity"})
    with urllib.request.urlopen(request) as response:
        return len(response.read())


def full_plotly_bundle() -> bytes:
    """Plotly's full bundle as the `plotly` Python package ships it (what the dashboard served before)."""
    from importlib import resources

    from nas_service.api.app import COMPILE_HINT

    return COMPILE_HINT + (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with sqlite_db() as url:
        job_id, token, _ = prepare(url, args.trials)
        with server(url, "on") as port, sync_playwright() as playwright:
            base = f"http://127.0.0.1:{port}"
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

            baseline_page = (BASELINE_PAGE.replace("TOKEN", token).replace("JOB", str(job_id))
                             .replace("PLOTLY_URL", PLOTLY_URL))
            full_plotly = full_plotly_bundle()

            def open_context(routes: dict[str, tuple[str, bytes]]) -> Any:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(f"localStorage.setItem('nas-token', {json.dumps(token)})")
                for url, (kind, body) in routes.items():
                    context.route(f"{base}{url}", lambda r, kind=kind, body=body: r.fulfill(
                        content_type=kind, body=body, headers={"Cache-Control": "public, max-age=31536000"}))
                return context

            def visit(context: Any, path: str, ready: str, timing: str) -> float:
                page = context.new_page()
                page.goto(f"{base}{path}")
                page.wait_for_function(ready, timeout=300_000)
                elapsed = float(page.evaluate(timing))
                page.close()
                return elapsed

            job_page = (f"/#/jobs/{job_id}", "document.querySelector('#pareto-plot').dataset.rendered === '1'",
                        "window.nasTimings.plotRenderedMs")
            variants = {
                "dashboard (columnar points + scattergl, Plotly gl2d bundle)": (
                    *job_page, {}, f"/api/v1/jobs/{job_id}/points", 1),
                "dashboard with Plotly's full bundle (4.8 MB)": (
                    *job_page, {PLOTLY_URL: ("text/javascript", full_plotly)}, f"/api/v1/jobs/{job_id}/points", 1),
                "baseline (every trial as a JSON object + SVG scatter)": (
                    "/baseline.html", "window.renderedMs !== undefined", "window.renderedMs",
                    {"/baseline.html": ("text/html", baseline_page.encode())},
                    f"/api/v1/jobs/{job_id}/trials?limit=1000&offset=0", -(-args.trials // 1000)),
            }
            for name, (path, ready, timing, route, payload, pages) in variants.items():
                cold = []
                for _ in range(args.runs + 1):  # the first warms server-side caches only
                    context = open_context(route)
                    cold.append(visit(context, path, ready, timing))
                    context.close()
                context = open_context(route)
                warm = [visit(context, path, ready, timing) for _ in range(args.runs + 1)][1:]
                context.close()
                cold = cold[1:]
                line = {"bench": "dashboard_load", "variant": name, "trials": args.trials, "runs": args.runs,
                        "cold_median_ms": round(statistics.median(cold), 1), "cold_max_ms": round(max(cold), 1),
                        "warm_median_ms": round(statistics.median(warm), 1), "warm_max_ms": round(max(warm), 1),
                        "payload_bytes": pages * payload_bytes(port, payload, token, gzip=False),
                        "payload_gzip_bytes": pages * payload_bytes(port, payload, token, gzip=True),
                        "load_average_1m": round(os.getloadavg()[0], 2)}
                if not route:
                    line.update(target_ms=TARGET_MS, meets_target=max(cold) <= TARGET_MS)
                print(json.dumps(line), flush=True)
            browser.close()


if __name__ == "__main__":
    main()
