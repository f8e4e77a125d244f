"""`POST /latency/total`: concurrent requests priced together in one vectorised call, each answered with its own
total, equal to pricing it alone."""

from __future__ import annotations

import asyncio

import httpx

import latency_models
from nas_service.api.deps import AppContext
from search_spaces import encode, load_space
from tests.api.conftest import Api


async def _ask_all(api: Api, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=api.client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=api.alice) as client:
        return list(await asyncio.gather(*(client.post("/api/v1/latency/total", json=b) for b in bodies)))


def test_concurrent_totals_are_batched_and_each_gets_its_own(api: Api) -> None:
    archs = load_space("edgetpu_small").random_members(60, resolution=28, seed=4)
    bodies = [{"arch": encode(a), "device": device} for a in archs for device in ("edgetpu_usb", "edgetpu_devboard")]
    ctx: AppContext = api.client.app.state.ctx  # type: ignore[attr-defined]
    before = ctx.latency.batches
    answers = asyncio.run(_ask_all(api, bodies))
    assert all(a.status_code == 200 for a in answers), answers[0].text
    expected = {d: latency_models.predict_total_ms(archs, d) for d in ("edgetpu_usb", "edgetpu_devboard")}
    for i, answer in enumerate(answers):
        body = answer.json()
        assert body["arch"] == bodies[i]["arch"] and body["device"] == bodies[i]["device"]
        assert body["total_ms"] == expected[body["device"]][i // 2]
    assert ctx.latency.batches - before < len(bodies) // 4  # 120 requests, a handful of batches


def test_a_bad_request_fails_alone(api: Api) -> None:
    good = {"arch": "mobilenet_v2", "device": "edgetpu_usb"}
    answers = asyncio.run(_ask_all(api, [good, {"arch": "mobilenet_v2", "device": "tpu9000"},
                                         {"arch": "r96_n10/zz_k3"}, good]))
    assert [a.status_code for a in answers] == [200, 422, 422, 200]
    assert answers[0].json()["total_ms"] == latency_models.predict("mobilenet_v2").total_ms
