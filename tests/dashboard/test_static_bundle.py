"""Plotly's vendored partial bundle: the page names the file the API serves, gzipped and cached for a year."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from nas_service.api import create_app
from nas_service.api.app import DASHBOARD_DIR, PLOTLY_BUNDLE
from nas_service.config import Settings
from nas_service.db import make_engine, upgrade_head


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("static")
    url = f"sqlite:///{root / 'nas.db'}"
    engine = make_engine(url)
    upgrade_head(engine)
    engine.dispose()
    with TestClient(create_app(Settings(database_url=url, artifacts_dir=root / "artifacts"))) as client:
        yield client


def test_page_loads_the_served_bundle_deferred(client: TestClient) -> None:
    page = client.get("/").text
    assert re.search(rf'<script src="/static/{re.escape(PLOTLY_BUNDLE)}" defer></script>', page)
    version = re.search(r"plotly-gl2d-([\d.]+)\.min\.js", PLOTLY_BUNDLE)
    assert version and f"v{version.group(1)}" in (DASHBOARD_DIR / PLOTLY_BUNDLE).read_text()[:200]
    assert PLOTLY_BUNDLE.removeprefix("vendor/") in (DASHBOARD_DIR / "vendor" / "README.md").read_text()


def test_bundle_is_gzipped_and_immutable(client: TestClient) -> None:
    bundle = (DASHBOARD_DIR / PLOTLY_BUNDLE).read_bytes()
    with client.stream("GET", f"/static/{PLOTLY_BUNDLE}", headers={"Accept-Encoding": "gzip"}) as response:
        wire = b"".join(response.iter_raw())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert len(wire) < len(bundle) / 2 and gzip.decompress(wire).endswith(bundle)
    plain = client.get(f"/static/{PLOTLY_BUNDLE}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content.endswith(bundle)
