"""One source of defaults: the `JobSpec`. The README's spec block, the default job's file, `nas search --help`, the
OpenAPI schema and the API's spec defaults all show it, and an empty spec, a REST body of only a budget and
`nas search` with flags only all get it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from nas_service.cli import app
from nas_service.cli.search import _spec_from_flags
from nas_service.spec import Budget, JobSpec, load_spec_file, parse_spec
from tests.api.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JOB = {"sampler": "tpe",
               "constraints": {"max_latency_ms": None, "max_params": 700_000, "max_model_bytes": None},
               "training.batch_size": 128, "initial": ["small"], "budget": {"trials": 24, "wall_seconds": 420},
               "resolution": 28, "space": "edgetpu_small", "dataset": "fashion_mnist_small", "device": "edgetpu_usb"}
"""The README's default job, in its words: TPE, 700k parameters, batch 128, warm start `small`, 420 s."""


def field(spec: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        spec = spec[key]
    return spec


def test_the_spec_defaults_are_the_default_job(tmp_path: Path) -> None:
    defaults = JobSpec().model_dump(mode="json")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_spec_file(empty) == JobSpec()  # an empty spec file is the default job
    assert {k: field(defaults, k) for k in DEFAULT_JOB} == DEFAULT_JOB
    example = load_spec_file(ROOT / "examples" / "fashion_edgetpu.yaml")
    assert example.model_copy(update={"name": None}) == JobSpec()
    assert parse_spec({}) == JobSpec()


def test_the_readme_shows_the_defaults() -> None:
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "schema_version" in b)
    data = yaml.safe_load(block)
    assert set(JobSpec.model_fields) - set(data) == {"name"}  # every field shown
    assert parse_spec(data) == JobSpec()
    job = readme[readme.index("### Default job"):]
    for words in ("TPE", "at most 700k parameters", "batch 128", "`default_small` member as the only warm start",
                  "no new trial after 420 s", "at 28 px"):
        assert words in " ".join(job[:1200].split()), words


def test_search_help_shows_the_defaults() -> None:
    result = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    for option, default in (("--resolution", "28"), ("--trials", "24"), ("--wall-seconds", "420"),
                            ("--epochs", "3"), ("--batch-size", "128"), ("--sampler", "tpe"),
                            ("--max-params", "700,000"), ("--initial", "small"), ("--space", "edgetpu_small"),
                            ("--dataset", "fashion_mnist_small"), ("--device", "edgetpu_usb")):
        described = text[text.index(option + " "):]
        assert f"default {default}" in described[:260], (option, described[:260])


def test_flags_only_and_a_budget_only_body_get_the_defaults(api: Api) -> None:
    expected = JobSpec(budget=Budget(trials=1)).model_dump(mode="json")
    assert _spec_from_flags(None, {"budget.trials": 1}).model_dump(mode="json") == expected
    created = api.client.post("/api/v1/jobs", json={"budget": {"trials": 1}}, headers=api.alice)
    assert created.status_code == 201, created.text
    assert created.json()["spec"] == expected
    assert api.client.get("/api/v1/spec/defaults", headers=api.alice).json() == JobSpec().model_dump(mode="json")


def test_openapi_shows_the_defaults(api: Api) -> None:
    schemas = api.client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    defaults = JobSpec()
    for name, model in (("JobSpec", defaults), ("Budget", defaults.budget), ("Training", defaults.training),
                        ("Constraints", defaults.constraints)):
        shown = {k: v["default"] for k, v in schemas[name]["properties"].items() if "default" in v}
        unshown = set(type(model).model_fields) - set(shown)
        assert all(getattr(model, k) is None for k in unshown), (name, unshown)  # only null defaults go unshown
        for key, value in shown.items():  # a nested model's default is shown without its own defaults
            expected = getattr(model, key)
            parsed = type(expected).model_validate(value) if hasattr(expected, "model_fields") else value
            assert parsed == (list(expected) if isinstance(expected, tuple) else expected), (name, key)
    assert schemas["JobSpec"]["properties"]["sampler"]["default"] == "tpe"
    assert schemas["Training"]["properties"]["batch_size"]["default"] == 128
    assert schemas["Constraints"]["properties"]["max_params"]["default"] == 700_000
