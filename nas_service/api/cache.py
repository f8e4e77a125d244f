"""Cached read responses of a job's results (front, points, trials pages), keyed by the job's version.

Reads of a job's results far outnumber its changes (a dashboard polls every 2 s, a trial finishes
every few seconds). A cached body is served without touching the database for `ttl` seconds; after
that one primary-key lookup revalidates it in the background (see `services.plot.results_version`)
and only a changed job recomputes it. The job's owner is kept with the body, so another user still
gets 404 from cache. Bodies are stored serialized and, when large, gzipped once; ETags let pollers
get 304s.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from nas_service.services.jobs import NotFoundError
from nas_service.services.plot import ResultsVersion, results_version

T = TypeVar("T")
logger = logging.getLogger(__name__)

TTL_SECONDS = 1.0
"""How long a cached body is served without asking the database whether the job changed."""
MAX_BYTES = 64 * 2**20
GZIP_MIN_BYTES = 2048


class SingleFlight:
    """At most one call in flight per key; concurrent callers for that key await the same result.

    The call runs as its own task, so a caller that goes away (a client disconnecting) cancels
    neither the call nor the other callers waiting for it.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    def running(self, key: Hashable) -> bool:
        return key in self._running

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        result: T = await asyncio.shield(task)
        return result

    def _done(self, key: Hashable, task: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: waiters re-raise it, and no one waiting is no error


@dataclass
class Entry:
    version: ResultsVersion
    body: bytes
    etag: str
    checked: float
    gzipped: bytes | None = None

    def gz(self) -> bytes:
        if self.gzipped is None:
            self.gzipped = gzip.compress(self.body, compresslevel=5)
        return self.gzipped

    def answer(self, if_none_match: str | None, accept_encoding: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a request with these headers: 304 for a matching ETag, gzip if accepted."""
        headers = {"ETag": self.etag, "Cache-Control": "private, no-cache", "Vary": "Accept-Encoding"}
        if if_none_match == self.etag:
            return 304, headers, b""
        headers["Content-Type"] = "application/json"
        if len(self.body) >= GZIP_MIN_BYTES and "gzip" in accept_encoding:
            headers["Content-Encoding"] = "gzip"
            return 200, headers, self.gz()
        return 200, headers, self.body


@dataclass
class ResultsCache:
    ttl: float = TTL_SECONDS
    max_bytes: int = MAX_BYTES
    enabled: bool = True
    """False computes every answer afresh (the baseline `bench/api_load.py` compares against)."""
    _entries: OrderedDict[Hashable, Entry] = field(default_factory=OrderedDict)
    _bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _flights: SingleFlight = field(default_factory=lambda: SingleFlight())
    _tasks: set[asyncio.Task[Entry]] = field(default_factory=set)

    async def respond(self, request: Request, sessions: Callable[[], Session], user: str, job_id: int,
                      key: Hashable, produce: Callable[[Session], BaseModel | None]) -> Response:
        """The cached (or freshly produced) JSON body of `produce` for `key` of job `job_id`, as `user` sees it.

        A missing entry is computed once however many requests ask at the same moment. A stale one is
        still served while one background task revalidates it, so no request waits on the database
        for a job whose answer is cached; an answer is at most `ttl` plus one revalidation old.
        """
        if not self.enabled:
            computed = await run_in_threadpool(self._refresh, sessions, user, job_id, key, produce, None)
            return self._response(request, computed)
        entry = self._entries.get(key)
        if entry is None:
            fresh = await self._flights.run((key, user), lambda: run_in_threadpool(
                self._refresh, sessions, user, job_id, key, produce, None))
            return self._response(request, fresh)
        if entry.version.owner != user:
            raise NotFoundError.job(job_id)
        if time.monotonic() - entry.checked > self.ttl and not self._flights.running((key, user)):
            stale = entry
            self._in_background(self._flights.run((key, user), lambda: run_in_threadpool(
                self._refresh, sessions, user, job_id, key, produce, stale)))
        return self._response(request, entry)

    def _in_background(self, revalidation: Coroutine[Any, Any, Entry]) -> None:
        task = asyncio.get_running_loop().create_task(revalidation)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Entry]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the next request retries; say why
            logger.warning("revalidating a cached job result failed: %s", task.exception())

    def _refresh(self, sessions: Callable[[], Session], user: str, job_id: int, key: Hashable,
                 produce: Callable[[Session], BaseModel | None], entry: Entry | None) -> Entry:
        with sessions() as session:
            version = results_version(session, job_id, owner=user)
            if entry is not None and entry.version == version:
                entry.checked = time.monotonic()
                return entry
            model = produce(session)
        body = model.model_dump_json().encode() if model is not None else b"null"
        etag = '"' + hashlib.blake2b(repr((key, version)).encode(), digest_size=12).hexdigest() + '"'
        fresh = Entry(version, body, etag, time.monotonic())
        if self.enabled:
            self._store(key, fresh)
        return fresh

    def _store(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= len(old.body) if old else 0
            self._entries[key] = entry
            self._bytes += len(entry.body)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.body)

    def forget_job(self, job_id: int) -> None:
        """Drop every cached result of a deleted job (keys are `result_keys.result_key(kind, job_id, ...)`)."""
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and len(k) > 1 and k[1] == job_id]:
                self._bytes -= len(self._entries.pop(key).body)

    def fresh(self, key: Hashable) -> Entry | None:
        """The entry for `key` if it needs no revalidation yet (the fast path's question)."""
        entry = self._entries.get(key) if self.enabled else None
        return entry if entry is not None and time.monotonic() - entry.checked <= self.ttl else None

    @staticmethod
    def _response(request: Request, entry: Entry) -> Response:
        status, headers, body = entry.answer(request.headers.get("if-none-match"),
                                             request.headers.get("accept-encoding", ""))
        return Response(body, status_code=status, headers=headers)
