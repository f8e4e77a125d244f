"""Prometheus metrics of the API: request counts and latencies per route template, on a per-app registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nas_service.db.models import JOB_STATUSES, Job


class JobsCollector(Collector):
    """Jobs by status and finished trials, counted in the database at scrape time (so every API process and
    every worker is included, wherever it runs)."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("nas_jobs", "Jobs by status.", labels=["status"])
        trials = GaugeMetricFamily("nas_trials_done", "Finished trials over all jobs.")
        with self.sessions() as session:
            counts = dict(session.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all())
            done = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Job.trials_done), 0))) or 0
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        trials.add_metric([], done)
        yield jobs
        yield trials


class Metrics:
    """One registry per app, so several apps in one process (tests) never clash."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(JobsCollector(sessions))
        self.requests = Counter("nas_http_requests", "HTTP requests by method, route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("nas_http_request_seconds", "HTTP request latency by method and route.",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """`/api/v1/jobs/{job_id}` for `/api/v1/jobs/7`: a bounded label set. Unmatched paths are one label."""
    if scope["path"].startswith("/static/"):
        return "/static"
    if "route" not in scope:
        return "unmatched"
    params = iter(scope.get("path_params", {}).items())
    pending = next(params, None)
    segments = []
    for segment in scope["path"].split("/"):
        if pending is not None and segment == str(pending[1]):
            segments.append("{" + pending[0] + "}")
            pending = next(params, None)
        else:
            segments.append(segment)
    return "/".join(segments)


class MetricsMiddleware:
    """Plain ASGI middleware (no per-request task): labels by the matched route template, not the raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_code[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status_code[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
