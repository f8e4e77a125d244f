"""The job spec: what a search job asks for. One versioned Pydantic model for the CLI, the API and the database.

A spec is stored with its job as JSON carrying `schema_version`; a later version must still read
version 1 (persisted names are API).

The defaults here are the one source of the default job (`examples/fashion_edgetpu.yaml`, the README, `nas search
--help`, the OpenAPI schema and the dashboard's form all show them; tests check each): an empty spec, a REST body
of only a budget and `nas search` with flags only all run that job. A job stores its whole spec, so changing a
default never changes a stored job.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

Objective = Literal["accuracy", "latency_ms", "params", "model_bytes"]
DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "accuracy": "maximize", "latency_ms": "minimize", "params": "minimize", "model_bytes": "minimize",
}


NOT_TEXT = {"Cc": "a control character", "Cf": "a format character (such as a bidirectional override)",
            "Cs": "a lone surrogate", "Zl": "a line separator", "Zp": "a paragraph separator"}
"""Unicode categories refused in spec text, and what to call them."""


def _plain(value: str) -> str:
    """Refuse control and format characters, line separators and lone surrogates: PostgreSQL cannot store NUL,
    UTF-8 cannot hold a lone surrogate, and a bidirectional override (U+202E) makes a name read as another in
    the tables, logs and dashboard that show it."""
    bad = next((ch for ch in value if unicodedata.category(ch) in NOT_TEXT), None)
    if bad is not None:
        raise ValueError(f"contains the character U+{ord(bad):04X}, {NOT_TEXT[unicodedata.category(bad)]}: only "
                         "printable characters are allowed")
    return value


Plain = AfterValidator(_plain)
"""Spec text: printable Unicode; its length limits (`StringConstraints`) are counted in characters."""
Name = Annotated[str, StringConstraints(max_length=200), Plain]
DatasetName = Annotated[str, StringConstraints(min_length=1, max_length=1000), Plain]
ArchText = Annotated[str, StringConstraints(min_length=1, max_length=10_000), Plain]


class SpecError(ValueError):
    """A job spec that does not validate; the message names the field and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN would pass no range check


class Constraints(_Strict):
    """Hard limits: a candidate breaking one is recorded as infeasible and never trained."""

    max_latency_ms: float | None = Field(default=None, gt=0, description="Predicted latency limit on the device.")
    max_params: int | None = Field(default=700_000, gt=0, description=(
        "Parameter count limit (Keras count); null for none. The default keeps about 65% of the default space's "
        "random members (`nas spaces show edgetpu_small`), which train in a minute on 2 cores."))
    max_model_bytes: int | None = Field(default=None, gt=0, description="Estimated int8 TFLite size limit.")


class Target(_Strict):
    """Single-objective reward around a latency target T (mode `target`).

    `mnasnet`: ACC * (LAT / T) ** w (MnasNet's soft reward, w = -0.07).
    `tunas`: ACC + w * |LAT / T - 1| (TuNAS's absolute reward, w < 0).
    """

    latency_ms: float = Field(gt=0, description="Latency target T in milliseconds.")
    reward: Literal["mnasnet", "tunas"] = "mnasnet"
    w: float = Field(default=-0.07, lt=0, description="Latency exponent (mnasnet) or penalty weight (tunas); negative.")


class Budget(_Strict):
    """When the search stops: after `trials` finished trials or `wall_seconds`, whichever comes first."""

    trials: int | None = Field(default=24, ge=1, le=100_000, description="Trials to finish; null for no limit.")
    wall_seconds: float | None = Field(default=420, gt=0, description=(
        "No trial starts after this many seconds (those running finish); null for no limit. The default job "
        "ends in under 10 minutes on 2 cores."))

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.trials is None and self.wall_seconds is None:
            raise ValueError("budget needs `trials` or `wall_seconds` (or both)")
        return self


class Training(_Strict):
    """How a candidate's accuracy is measured.

    `scorer: train` trains it for real (TensorFlow) and exports int8 TFLite. `scorer: estimate` uses
    the cheap accuracy estimator (no training, milliseconds per candidate): for dry runs, benchmarks
    and testing the search machinery; its accuracies are not measurements.
    """

    scorer: Literal["train", "estimate"] = "train"
    epochs: int = Field(default=3, ge=1, le=500)
    batch_size: int = Field(default=128, ge=1, le=4096)
    train_images: int | None = Field(default=None, ge=20, le=100_000_000, description=(
        "Train every candidate on the same stratified subset of this many training images (a proxy task: "
        "faster, same test split); null trains on them all."))
    early_stopping: bool = Field(default=True, description="Stop training a candidate that cannot reach the front.")
    early_stopping_grace: float = Field(default=0.5, ge=0, le=1, description=(
        "Fraction of the planned epochs trained before early stopping may act (and never before epoch 2)."))
    simulate_seconds: float = Field(default=0.0, ge=0, le=3600, description=(
        "With scorer `estimate`: seconds each candidate pretends to train, spread over its epochs, "
        "to rehearse worker fleets and live dashboards."))
    export_int8: bool = Field(default=True, description="Export and evaluate each trained candidate as int8 TFLite.")
    device_class: Literal["any", "cpu", "gpu"] = Field(default="any", description=(
        "The workers that may train the job's candidates: any, or only those of device class cpu or gpu (`nas "
        "worker --device-class`). A worker takes jobs asking for its own class before `any` ones; a job asking "
        "for a class no worker has stays queued."))
    concurrency: int = Field(default=2, ge=1, le=16, description=(
        "Candidates each worker trains side by side, each in a process of its own (a slot is refilled as soon "
        "as its trial ends). Default: 2 with real training (on 2 cores, 1.8 to 1.95 times the trials per hour "
        "of one on the default job, bench/continuous_batching.py); 1 with the estimator (milliseconds per "
        "candidate: nothing to overlap)."))

    mode: Literal["standalone", "oneshot"] = Field(default="standalone", description=(
        "standalone: every candidate is trained from scratch. oneshot: one supernet of the space is trained "
        "(supernet_epochs, sandwich rule), every candidate is scored by its subnet with inherited weights after "
        "batch-norm recalibration (fidelity oneshot), then the one-shot front is trained from scratch "
        "(fidelity standalone)."))
    supernet_epochs: int = Field(default=2, ge=1, le=500, description="oneshot: epochs of supernet training.")
    sandwich_random: int = Field(default=2, ge=0, le=16, description=(
        "oneshot: random subnets per supernet step, beside the largest and the smallest."))
    calibration_batches: int = Field(default=4, ge=1, le=1000, description=(
        "oneshot: training batches a subnet's batch-norm statistics are recalibrated on before it is scored."))
    score_images: int | None = Field(default=1000, ge=10, le=100_000_000, description=(
        "oneshot: test images a subnet is scored on (the first ones; null: all). Confirmation uses them all."))

    @model_validator(mode="before")
    @classmethod
    def _default_concurrency(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("concurrency") is None:
            real = data.get("scorer", "train") == "train" and data.get("mode", "standalone") == "standalone"
            return {**data, "concurrency": 2 if real else 1}
        return data

    @model_validator(mode="after")
    def _oneshot_trains(self) -> Training:
        if self.mode == "oneshot" and self.scorer != "train":
            raise ValueError(f"mode 'oneshot' trains a supernet: it needs scorer 'train', not {self.scorer!r}")
        return self


class JobSpec(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: Name | None = None
    space: str = "edgetpu_small"
    dataset: DatasetName = "fashion_mnist_small"
    device: str = "edgetpu_usb"
    resolution: int | None = Field(default=28, ge=16, le=1024, description=(
        "Fixed input resolution; null searches the space's resolutions. When not given: 28, or the space's "
        "smallest resolution where the space does not list 28."))
    objectives: tuple[Objective, ...] = ("accuracy", "latency_ms")
    constraints: Constraints = Constraints()
    mode: Literal["pareto", "target"] = "pareto"
    sampler: Literal["nsga2", "tpe", "random"] = "tpe"
    target: Target | None = None
    budget: Budget = Budget()
    training: Training = Training()
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    initial: tuple[ArchText, ...] = Field(
        default=("small",), max_length=100, description=(
        "Architectures evaluated first (strings or 'small' for the space's default small member), e.g. "
        "reference networks or a previous job's front: a warm start for the sampler; [] for none."))

    @model_validator(mode="before")
    @classmethod
    def _resolution_of_the_space(cls, data: Any) -> Any:
        """A spec naming only its space gets a resolution of that space (28 is not one of every space)."""
        if not isinstance(data, dict) or "resolution" in data:
            return data
        from search_spaces import load_space, space_names

        space = data.get("space", cls.model_fields["space"].default)
        if space not in space_names():
            return data  # the field's validator names it
        allowed = load_space(space).resolutions()
        default = cls.model_fields["resolution"].default
        return data if default in allowed else {**data, "resolution": min(allowed)}

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        from search_spaces import space_names

        if value not in space_names():
            raise ValueError(f"unknown search space {value!r}: expected one of {', '.join(space_names())}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        from latency_models import profile_names

        if value not in profile_names():
            raise ValueError(f"unknown device {value!r}: expected one of {', '.join(profile_names())}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives {list(self.objectives)} repeat a name: list each once")
        if self.objectives[:2] != ("accuracy", "latency_ms"):
            raise ValueError(f"objectives {list(self.objectives)} must start with accuracy, latency_ms "
                             "(then optionally params, model_bytes)")
        if self.mode == "target" and self.target is None:
            raise ValueError("mode 'target' needs a `target` (latency_ms, reward, w)")
        if self.mode == "pareto" and self.target is not None:
            raise ValueError("`target` is only used with mode 'target'")
        if self.training.mode == "oneshot":
            self._check_oneshot()
        return self

    def _check_oneshot(self) -> None:
        from nas_service.trainer.supernet import SupernetError, check_space
        from search_spaces import load_space

        if self.resolution is None:
            raise ValueError("training.mode 'oneshot' needs a fixed resolution (the supernet's): set resolution")
        try:
            check_space(load_space(self.space))
        except SupernetError as exc:
            raise ValueError(f"training.mode 'oneshot': {exc}; use mode 'standalone'") from None

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna study directions: the objectives in pareto mode, one reward in target mode."""
        if self.mode == "target":
            return ["maximize"]
        return [DIRECTIONS[o] for o in self.objectives]


def default_of(dotted: str) -> Any:
    """The default of a spec field named by its dotted path (`training.batch_size`), for help texts."""
    node: Any = JobSpec()
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def parse_spec(data: object, where: str = "job spec") -> JobSpec:
    """Validate a mapping into a `JobSpec`, turning Pydantic's errors into one `SpecError` naming each field."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(spec)'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"invalid {where}: {problems}") from None


def load_spec_file(path: Path) -> JobSpec:
    """A spec from a YAML (or JSON) file; an empty file is the default job. Every problem is one `SpecError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise SpecError(f"job spec file {path} is a directory: expected a YAML file") from None
    except FileNotFoundError:
        raise SpecError(f"job spec file {path} not found: expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"job spec file {path} cannot be read ({exc}): expected a UTF-8 YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"job spec file {path} is not valid YAML{where}: {problem}") from None
    if data is None:  # empty, or only comments
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"invalid job spec file {path}: expected a mapping of fields, got {type(data).__name__}")
    return parse_spec(data, where=f"job spec file {path}")
