"""`create_app(settings)`: the FastAPI application. Everything it needs is built here, never at import time."""

from __future__ import annotations

import gzip
import threading
from importlib import metadata
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from nas_service.api import errors
from nas_service.api.batching import LatencyBatcher
from nas_service.api.cache import ResultsCache
from nas_service.api.content_type import JsonBodiesOnly
from nas_service.api.deps import AppContext
from nas_service.api.fastpath import CachedResultsFastPath
from nas_service.api.metrics import Metrics, MetricsMiddleware
from nas_service.api.routes import catalog, datasets, health, jobs, latency
from nas_service.config import Settings
from nas_service.db.engine import make_engine, session_factory

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 2**20
"""Request bodies are job specs and architecture strings; only the .tflite upload route allows more."""
DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard" / "static"


PLOTLY_BUNDLE = "vendor/plotly-gl2d-3.7.0.min.js"
"""Plotly's partial gl2d bundle (scatter, scattergl; 1.6 MB) under `DASHBOARD_DIR`: no CDN, works offline.
The name carries the version, so browsers may keep it for a year (see `vendor/README.md`)."""

COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"
"""V8's explicit compile hint: compile every function of the file eagerly, on a background thread while it
streams in, rather than lazily on the main thread. Plotly runs most of its bundle on load; its start-up
in headless Chromium here went from 1.32 to 1.16 s (medians of 6, load average 6)."""


class StaticAsset:
    """A large versioned file (Plotly's bundle) read once and gzipped once, not on every request."""

    CACHE_CONTROL = "public, max-age=31536000, immutable"

    def __init__(self, path: Path, prefix: bytes = b"") -> None:
        self.path = path
        self.prefix = prefix
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._gzipped: bytes | None = None

    def _load(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._body is None or self._gzipped is None:
                self._body = self.prefix + self.path.read_bytes()
                self._gzipped = gzip.compress(self._body, compresslevel=6)
            return self._body, self._gzipped

    def response(self, request: Request) -> Response:
        body, gzipped = self._load()
        headers = {"Cache-Control": self.CACHE_CONTROL, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(gzipped, media_type="text/javascript", headers=headers)
        return Response(body, media_type="text/javascript", headers=headers)


def create_app(settings: Settings | None = None, *, cache_results: bool = True, batch_latency: bool = True) -> FastAPI:
    """The API, the metrics endpoint and the dashboard over the database named by `settings`.

    The database must already be migrated (`nas serve` and the compose `migrate` service do that).
    `cache_results=False` recomputes every read of a job's results, `batch_latency=False` prices every latency
    total on its own (benchmark baselines).
    """
    settings = settings or Settings()
    engine = make_engine(settings.database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
    app = FastAPI(
        title="NAS service",
        version=metadata.version("nas-service"),
        description="Hardware-aware neural architecture search: submit jobs, follow them, read Pareto fronts "
                    "and download int8 TFLite candidates. Every `/api/v1` route except health needs "
                    "`Authorization: Bearer <token>` (create one with `nas tokens create --user NAME`).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        max_body_size=MAX_BODY_BYTES,
    )
    from nas_service.db.artifacts import make_store

    app.state.ctx = AppContext(settings=settings, engine=engine, sessions=session_factory(engine),
                               store=make_store(settings, engine),
                               results=ResultsCache(enabled=cache_results),
                               latency=LatencyBatcher(enabled=batch_latency))
    metrics = Metrics(app.state.ctx.sessions)
    errors.install(app)
    for module in (health, jobs, catalog, latency, datasets):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return metrics.response()

    plotly = StaticAsset(DASHBOARD_DIR / PLOTLY_BUNDLE, prefix=COMPILE_HINT)

    @app.get(f"/static/{PLOTLY_BUNDLE}", include_in_schema=False)
    def plotly_bundle(request: Request) -> Response:
        return plotly.response(request)

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_middleware(JsonBodiesOnly, prefix=API_PREFIX)
    app.add_middleware(CachedResultsFastPath, ctx=app.state.ctx)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
