"""Fresh cached job results answered before FastAPI's routing and dependency injection.

A dashboard polling a front, or a hundred clients reading one, ask for the same cached bytes again
and again; routing and resolving dependencies cost more than the answer. This ASGI middleware
answers `GET /api/v1/jobs/{id}/front`, `/front/knee`, `/points` and plainly valid `/trials` pages
itself only when everything is already known: the bearer token's user is cached, the job's entry
is fresh and that user owns it. Anything else (a miss, a stale entry, an unknown token, another
user's job, an odd query) goes down the normal route, which validates, authenticates, revalidates
and fills the same caches, so both paths give the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

from starlette.types import ASGIApp, Receive, Scope, Send

from nas_service.api.deps import AppContext
from nas_service.api.result_keys import PLAIN, result_key, trials_page_key

SUFFIXES = (*PLAIN, "trials")
"""The results it answers, under /api/v1/jobs/{job_id}/."""
ROUTES = re.compile(rf"^/api/v1/jobs/([1-9][0-9]{{0,17}})/({'|'.join(map(re.escape, SUFFIXES))})$")


class CachedResultsFastPath:
    def __init__(self, app: ASGIApp, ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = ROUTES.match(scope["path"])
            key = self._key(match, scope.get("query_string", b"").decode("latin-1")) if match else None
            if key is not None and match is not None and await self._answer(scope, send, int(match.group(1)), key):
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _key(match: re.Match[str], query: str) -> Hashable | None:
        job_id, what = int(match.group(1)), match.group(2)
        if what == "trials":
            return trials_page_key(job_id, query)
        return None if query else result_key(PLAIN[what], job_id)

    async def _answer(self, scope: Scope, send: Send, job_id: int, key: Hashable) -> bool:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        user = self.ctx.token_cache.fresh_user(token)
        entry = self.ctx.results.fresh(key) if user is not None else None
        if entry is None or entry.version.owner != user:
            return False
        status, answer_headers, body = entry.answer(headers.get(b"if-none-match", b"").decode("latin-1") or None,
                                                    headers.get(b"accept-encoding", b"").decode("latin-1"))
        answer_headers["Content-Length"] = str(len(body))
        scope["route"], scope["path_params"] = "fast path", {"job_id": str(job_id)}  # metrics label the template
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in answer_headers.items()]})
        await send({"type": "http.response.body", "body": body})
        return True
