"""Micro-batching of latency totals: concurrent requests become one vectorised `predict_total_ms` call per device.

The vectorised model prices a batch of architectures for about the cost of a few single ones (10,400 per
second against 940 one at a time). A request waits at most `max_wait_s` for others to join it, or until
`max_batch` have, so a lone client pays the wait once and a crowd pays it once per batch.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

import latency_models
from search_spaces import ArchSpec

MAX_WAIT_S = 0.002
MAX_BATCH = 256


@dataclass
class _Waiting:
    arch: ArchSpec
    device: str
    answer: asyncio.Future[float]


@dataclass
class LatencyBatcher:
    """Collects `total_ms` requests on the event loop and answers them from batched predictions."""

    max_wait_s: float = MAX_WAIT_S
    max_batch: int = MAX_BATCH
    enabled: bool = True
    """False prices every request on its own (the benchmark's baseline)."""
    _queue: list[_Waiting] = field(default_factory=list)
    _flush: asyncio.TimerHandle | None = None
    batches: int = 0

    async def total_ms(self, arch: ArchSpec, device: str) -> float:
        if not self.enabled:
            return (await run_in_threadpool(latency_models.predict_total_ms, [arch], device))[0]
        loop = asyncio.get_running_loop()
        waiting = _Waiting(arch, device, loop.create_future())
        self._queue.append(waiting)
        if len(self._queue) >= self.max_batch:
            self._start(loop)
        elif self._flush is None:
            self._flush = loop.call_later(self.max_wait_s, self._start, loop)
        return await waiting.answer

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._queue = self._queue, []
        if batch:
            self.batches += 1
            loop.create_task(self._answer(batch))

    @staticmethod
    async def _answer(batch: list[_Waiting]) -> None:
        by_device: dict[str, list[_Waiting]] = defaultdict(list)
        for waiting in batch:
            by_device[waiting.device].append(waiting)
        for device, group in by_device.items():
            try:
                totals = await run_in_threadpool(latency_models.predict_total_ms, [w.arch for w in group], device)
            except Exception as exc:  # an unknown device fails its own group only
                for waiting in group:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            for waiting, total in zip(group, totals, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(float(total))
