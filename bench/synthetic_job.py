"""A finished job of N trials written straight into the database, for benchmarks of the read path.

Architectures are sampled from a real search space and priced by the real latency model and the
documented estimate scorer (no training), so rows look like those of a real search: candidates with
their analysis and latency breakdown, ~20% infeasible trials (over a latency limit, never scored),
repeats reusing their candidate, and the Pareto front flagged. Writing 10,000 trials takes seconds;
searching them would take hours.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.controller import pareto
from nas_service.controller.latency import predict_latency
from nas_service.controller.objective import model_bytes_estimate
from nas_service.controller.scoring import EstimateScorer, arch_hash
from nas_service.db.models import Candidate, Job, Trial
from nas_service.spec import JobSpec
from search_spaces import analyze, encode, load_space


def seed_job(session: Session, owner: str, trials: int, *, seed: int = 0, space: str = "edgetpu",
             resolution: int = 32, unique: int | None = None) -> int:
    """Insert a completed job with `trials` trials over at most `unique` distinct architectures; return its id."""
    rng = random.Random(seed)
    search_space = load_space(space)
    choices = {name: values for name, values in search_space.choices().items()
               if len(values) > 1 and name != "resolution"}
    scorer = EstimateScorer()
    archs: list[tuple[str, dict[str, Any]]] = []
    for _ in range(min(unique or trials, trials)):
        arch = search_space.build({k: rng.choice(v) for k, v in choices.items()}, num_classes=10,
                                  resolution=resolution)
        analysis = analyze(arch)
        latency = predict_latency(arch, "edgetpu_usb")
        archs.append((encode(arch), {
            "params": analysis.params, "macs": analysis.macs, "model_bytes_estimate": model_bytes_estimate(analysis),
            "analysis": analysis.to_dict(), "latency_ms": latency.total_ms, "latency_profile": latency.profile_version,
            "latency": latency.detail, "accuracy": scorer.estimate(arch)}))
    limit = sorted(a[1]["latency_ms"] for a in archs)[int(len(archs) * 0.8)]
    spec = JobSpec.model_validate({"name": f"synthetic-{trials}", "space": space, "resolution": resolution,
                                   "budget": {"trials": trials}, "training": {"scorer": "estimate"},
                                   "constraints": {"max_latency_ms": limit}})
    now = datetime.now(UTC)
    job = Job(name=spec.name, owner=owner, spec=spec.model_dump(mode="json"), status="completed",
              study_name=f"synthetic-{uuid.uuid4().hex}", trials_budget=trials, trials_reserved=trials,
              trials_done=trials, created_at=now, started_at=now, finished_at=now)
    session.add(job)
    session.flush()

    front = pareto.Front()
    rows = []
    for text, values in archs:
        feasible = values["latency_ms"] <= limit
        if feasible:
            front.add(pareto.Point(text, (values["accuracy"], values["latency_ms"])))
        rows.append({**values, "job_id": job.id, "arch": text, "arch_hash": arch_hash(text),
                     "status": "trained" if feasible else "infeasible",
                     "accuracy": values["accuracy"] if feasible else None,
                     "violations": {} if feasible else {"latency_ms": [values["latency_ms"], limit]}})
    on_front = {p.key for p in front.points}
    for row in rows:
        row["on_front"] = row["arch"] in on_front
    session.execute(sa.insert(Candidate), rows)
    ids = dict(session.execute(sa.select(Candidate.arch, Candidate.id).where(Candidate.job_id == job.id)).all())

    trial_rows = []
    seen: set[str] = set()
    for number in range(trials):
        text, values = archs[number] if number < len(archs) else rng.choice(archs)
        feasible = values["latency_ms"] <= limit
        trial_rows.append({
            "job_id": job.id, "number": number, "candidate_id": ids[text],
            "state": "complete" if feasible else "infeasible",
            "accuracy": values["accuracy"] if feasible else 0.0, "latency_ms": values["latency_ms"],  # as Optuna saw it
            "params": values["params"], "model_bytes": values["model_bytes_estimate"], "reused": text in seen,
            "worker": "synthetic", "started_at": now, "finished_at": now})
        seen.add(text)
    session.execute(sa.insert(Trial), trial_rows)
    session.commit()
    return job.id
