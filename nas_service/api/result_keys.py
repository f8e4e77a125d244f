"""The cache keys of job results and the limits of a trials page, in one place for the routes that fill the
cache (`routes/jobs.py`) and the fast path that answers from it (`fastpath.py`): both must agree exactly."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal, get_args
from urllib.parse import parse_qsl

from nas_service.services.jobs import TRIAL_SORT_KEYS

MAX_OFFSET, MAX_LIMIT, DEFAULT_LIMIT = 10_000_000, 1000, 100
Order = Literal["asc", "desc"]
ORDERS = get_args(Order)
TRIALS_DEFAULTS = {"offset": "0", "limit": str(DEFAULT_LIMIT), "sort": "number", "order": "asc"}
PLAIN = {"front": "front", "front/knee": "knee", "points": "points"}
"""Path suffix under /jobs/{job_id}/ -> the kind of its cache key, for results read without a query."""


def result_key(kind: str, job_id: int, *args: Hashable) -> tuple[Hashable, ...]:
    return (kind, job_id, *args)


def trials_key(job_id: int, offset: int, limit: int, sort: str, order: str) -> tuple[Hashable, ...]:
    """The cache key of one trials page."""
    return result_key("trials", job_id, offset, limit, sort, order)


def trials_page_key(job_id: int, query: str) -> Hashable | None:
    """The cache key of a trials page, or None unless the query is plainly valid (the route judges the rest)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not set(params) <= set(TRIALS_DEFAULTS):
        return None
    params = {**TRIALS_DEFAULTS, **params}
    offset, limit = params["offset"], params["limit"]
    if not (offset.isdigit() and limit.isdigit() and int(offset) <= MAX_OFFSET and 1 <= int(limit) <= MAX_LIMIT
            and params["sort"] in TRIAL_SORT_KEYS and params["order"] in ORDERS):
        return None
    return trials_key(job_id, int(offset), int(limit), params["sort"], params["order"])
