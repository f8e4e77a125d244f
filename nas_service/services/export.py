"""Copy the int8 TFLite files of a job's Pareto front into a directory, with a `front.json` index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from nas_service.services.jobs import get_front, get_job


class ExportError(ValueError):
    """A front that has no model files to export; the message says why and what to do."""


def export_front(session: Session, job_id: int, out_dir: Path, *, owner: str | None = None) -> list[Path]:
    """Write `NN_<latency>ms_<accuracy>.tflite` for every front member (fastest first) and `front.json`."""
    job = get_job(session, job_id, owner=owner)
    front = get_front(session, job_id, owner=owner)
    if not front:
        raise ExportError(f"job {job_id} has no Pareto front yet ({job.status}, {job.trials_done} trials done)")
    if job.spec.training.scorer == "estimate":
        raise ExportError(f"job {job_id} scored its candidates with the cheap accuracy estimator: there are no "
                          "trained models to export; run the search with `--scorer train`")
    missing = [p.candidate_id for p in front if not p.tflite_path or not Path(p.tflite_path).is_file()]
    if missing:
        raise ExportError(f"job {job_id}: front candidates {missing} have no int8 TFLite file (exported with "
                          "training.export_int8, kept under the artifacts directory)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, index = [], []
    for rank, point in enumerate(front, 1):
        target = out_dir / f"{rank:02d}_{point.latency_ms:.3f}ms_{point.accuracy:.4f}.tflite"
        shutil.copyfile(str(point.tflite_path), target)
        written.append(target)
        index.append({**point.to_dict(), "file": target.name})
    (out_dir / "front.json").write_text(json.dumps({"job": job_id, "front": index}, indent=2))
    return written
