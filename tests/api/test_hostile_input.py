"""Hostile request bodies found by `bench/reliability.py`: each answered 4xx (never 500) and nothing stored.

Run on SQLite and on PostgreSQL, whose text columns refuse NUL characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, make_api

JSON = {"Content-Type": "application/json"}
CASES: list[tuple[str, bytes | str, dict[str, str]]] = [
    ("NUL in the name", json.dumps({"name": "a\u0000b"}), JSON),
    ("newline in the name", json.dumps({"name": "a\nb"}), JSON),
    ("lone surrogate in the name", json.dumps({"name": "\ud800"}), JSON),
    ("lone surrogate in the space", json.dumps({"space": "\ud800"}), JSON),
    ("lone surrogate in a warm start", json.dumps({"initial": ["\udfff"]}), JSON),
    ("NUL in the dataset", json.dumps({"dataset": "digits\u0000"}), JSON),
    ("1 MB warm-start string", json.dumps({"initial": ["x" * 1_000_000]}), JSON),
    ("warm start outside the space", json.dumps({"initial": ["ir_k3_s1_e6_c16"]}), JSON),
    ("invalid UTF-8, no content type", b'{"name": "\xff\xfe"}', {}),
    ("invalid UTF-8 as JSON", b'{"name": "\xff\xfe"}', JSON),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/nas.db"
    yield from make_api(url, tmp_path / "artifacts")


def test_hostile_job_bodies_get_4xx_and_store_nothing(any_api: Api) -> None:
    for case, body, headers in CASES:
        answer = any_api.client.post("/api/v1/jobs", content=body, headers={**headers, **any_api.alice})
        assert 400 <= answer.status_code < 500, (case, answer.status_code, answer.text[:300])
        assert answer.json()["detail"], case
    assert any_api.client.get("/api/v1/jobs", headers=any_api.alice).json()["total"] == 0


def test_the_422_names_the_field_and_the_character(any_api: Api) -> None:
    answer = any_api.client.post("/api/v1/jobs", json={"name": "a\u0000b"}, headers=any_api.alice)
    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "name"] and "U+0000" in error["msg"]
    warm = any_api.client.post("/api/v1/jobs", json={"initial": ["small", "nonsense"]}, headers=any_api.alice)
    assert warm.status_code == 422 and "initial.1" in warm.json()["detail"][0]["msg"]


def test_printable_unicode_is_kept(any_api: Api) -> None:
    name = "\u540d\u524d e\u0301 \U0001f642 \u05e9\u05dc\u05d5\u05dd"  # CJK, a combining accent, emoji, Hebrew
    answer = any_api.client.post("/api/v1/jobs", json={"name": name, "training": {"scorer": "estimate"}},
                                 headers=any_api.alice)
    assert answer.status_code == 201, answer.text
    assert any_api.client.get(f"/api/v1/jobs/{answer.json()['id']}", headers=any_api.alice).json()["name"] == name


@pytest.mark.parametrize(("name", "code"), [("invoice\u202egpj.exe", "U+202E"), ("a\u200bb", "U+200B"),
                                            ("a\u2028b", "U+2028"), ("a\x85b", "U+0085"), ("\ufeffjob", "U+FEFF")])
def test_bidi_overrides_and_other_format_characters_are_refused(any_api: Api, name: str, code: str) -> None:
    """A right-to-left override made 'invoice\u202egpj.exe' read as 'invoiceexe.jpg' wherever the name is shown."""
    answer = any_api.client.post("/api/v1/jobs", json={"name": name}, headers=any_api.alice)
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "name"] and code in error["msg"]


def test_limits_are_in_characters_and_nan_is_not_a_number(any_api: Api) -> None:
    long = any_api.client.post("/api/v1/jobs", json={"name": "x" * 201}, headers=any_api.alice)
    assert long.status_code == 422 and long.json()["detail"][0]["msg"] == "String should have at most 200 characters"
    for body in ('{"constraints": {"max_latency_ms": NaN}}', '{"budget": {"wall_seconds": Infinity}}'):
        answer = any_api.client.post("/api/v1/jobs", content=body, headers={**JSON, **any_api.alice})
        assert answer.status_code == 422 and answer.json()["detail"][0]["msg"] == "Input should be a finite number", \
            answer.text
    job = any_api.client.post("/api/v1/jobs", json={"training": {"scorer": "estimate"}}, headers=any_api.alice).json()
    for value in ("nan", "inf"):
        best = any_api.client.get(f"/api/v1/jobs/{job['id']}/front/best?max_latency_ms={value}", headers=any_api.alice)
        assert best.status_code == 422 and best.json()["detail"][0]["msg"] == "Input should be a finite number", \
            best.text
