"""The dashboard's Datasets view in a real browser: upload a .npz, see it listed with its shapes, a bad file
refused with the server's one-line reason, and delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_uploaded_datasets import npz
from tests.dashboard.conftest import ARTIFACTS, Served
from tests.dashboard.test_browser import logged_in

pytestmark = pytest.mark.browser


def test_upload_list_refuse_and_delete_a_dataset(browser: Any, served: Served, tmp_path: Path) -> None:
    good, bad = tmp_path / "shapes.npz", tmp_path / "junk.npz"
    good.write_bytes(npz())
    bad.write_bytes(b"\x93NUMPY" + bytes(300))
    page = logged_in(browser, served)
    page.click("nav >> text=Datasets")
    page.wait_for_selector("#view-datasets:not([hidden])")
    page.set_input_files("#dataset-file", str(good))
    page.click("#dataset-form button[type=submit]")
    page.wait_for_selector("#datasets-table tbody tr")
    cells = page.eval_on_selector_all("#datasets-table tbody tr:first-child td", "tds => tds.map(t => t.textContent)")
    assert cells[1] == "shapes.npz" and cells[2].startswith("3 ") and cells[3] == "30x32x32x3"
    assert cells[6].startswith("upload:")
    page.set_input_files("#dataset-file", str(bad))
    page.click("#dataset-form button[type=submit]")
    page.wait_for_selector("#dataset-error:has-text('cannot be read as a .npz')")
    assert "junk.npz" in page.inner_text("#dataset-error") and "/tmp" not in page.inner_text("#dataset-error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-datasets.png"), full_page=True)
    page.click("#datasets-table .delete-dataset")
    page.wait_for_function("document.querySelectorAll('#datasets-table tbody tr').length === 0")
    assert page.errors == []
