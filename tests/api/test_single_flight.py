"""One computation per key however many requests ask at once; a caller leaving cancels nobody else."""

from __future__ import annotations

import asyncio

import pytest

from nas_service.api.cache import SingleFlight


def test_concurrent_callers_share_one_call() -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    async def main() -> list[int]:
        flights = SingleFlight()
        return await asyncio.gather(*(flights.run("k", compute) for _ in range(20)))

    assert asyncio.run(main()) == [42] * 20 and calls == 1


def test_a_cancelled_caller_leaves_the_others_their_result() -> None:
    async def main() -> int:
        flights = SingleFlight()
        first = asyncio.ensure_future(flights.run("k", lambda: asyncio.sleep(0.02, result=7)))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(flights.run("k", lambda: asyncio.sleep(0.02, result=8)))
        first.cancel()
        return await second

    assert asyncio.run(main()) == 7


def test_errors_reach_every_caller_and_the_key_is_freed() -> None:
    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    async def main() -> None:
        flights = SingleFlight()
        results = await asyncio.gather(*(flights.run("k", fail) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, LookupError) for r in results)
        assert not flights.running("k")
        assert await flights.run("k", lambda: asyncio.sleep(0, result=1)) == 1

    asyncio.run(main())


def test_nothing_left_running_after_cancellation() -> None:
    async def main() -> None:
        flights = SingleFlight()
        caller = asyncio.ensure_future(flights.run("k", lambda: asyncio.sleep(0.01, result=1)))
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0.03)
        assert not flights.running("k")

    asyncio.run(main())
