"""Copy the int8 TFLite files of a job's Pareto front into a directory or a zip, with a `front.json` index."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

from sqlalchemy.orm import Session

from nas_service.services.jobs import get_front, get_job


class ExportError(ValueError):
    """A front that has no model files to export; the message says why and what to do."""


def model_file(artifacts_dir: Path, stored: str | None) -> Path | None:
    """The file of a candidate's stored `tflite_path` (relative to the artifacts directory); None if it has none."""
    if not stored:
        return None
    path = Path(stored)
    return path if path.is_absolute() else artifacts_dir / path


def check_out_dir(directory: Path) -> None:
    """Raise `ExportError` unless `directory` is a directory or can be made one (no file in its way)."""
    for path in (directory, *directory.parents):
        if path.exists():
            if not path.is_dir():
                raise ExportError(f"cannot write into {directory}: {path} is a file, not a directory; choose "
                                  "another --out")
            return


def _front_files(session: Session, job_id: int, artifacts_dir: Path,
                 owner: str | None) -> list[tuple[str, Path, dict[str, object]]]:
    """(file name, source file, index entry) of every front member, fastest first; `ExportError` if any is missing."""
    job = get_job(session, job_id, owner=owner)
    front = get_front(session, job_id, owner=owner)
    if not front:
        raise ExportError(f"job {job_id} has no Pareto front yet ({job.status}, {job.trials_done} trials done)")
    if job.spec.training.scorer == "estimate":
        raise ExportError(f"job {job_id} scored its candidates with the cheap accuracy estimator: there are no "
                          "trained models to export; run the search with `--scorer train`")
    paths = {p.candidate_id: model_file(artifacts_dir, p.tflite_path) for p in front}
    missing = [cid for cid, path in paths.items() if path is None or not path.is_file()]
    if missing:
        raise ExportError(f"job {job_id}: front candidates {missing} have no int8 TFLite file (exported with "
                          "training.export_int8, kept under the artifacts directory)")
    files = []
    for rank, point in enumerate(front, 1):
        name = f"{rank:02d}_{point.latency_ms:.3f}ms_{point.accuracy:.4f}.tflite"
        files.append((name, Path(str(paths[point.candidate_id])), {**point.to_dict(), "file": name}))
    return files


def _index(job_id: int, files: list[tuple[str, Path, dict[str, object]]]) -> str:
    """`front.json`: the job and every member's front point with its file name."""
    return json.dumps({"job": job_id, "front": [entry for *_, entry in files]}, indent=2)


def export_front(session: Session, job_id: int, out_dir: Path, artifacts_dir: Path, *,
                 owner: str | None = None) -> list[Path]:
    """Write `NN_<latency>ms_<accuracy>.tflite` for every front member (fastest first) and `front.json`."""
    check_out_dir(out_dir)
    files = _front_files(session, job_id, artifacts_dir, owner)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc.strerror}; choose another --out") from None
    for name, source, _ in files:
        shutil.copyfile(source, out_dir / name)
    (out_dir / "front.json").write_text(_index(job_id, files))
    return [out_dir / name for name, *_ in files]


def front_zip(session: Session, job_id: int, artifacts_dir: Path, *, owner: str | None = None) -> bytes:
    """The same files as `export_front`, as one zip (the dashboard's "download front")."""
    files = _front_files(session, job_id, artifacts_dir, owner)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source, _ in files:
            archive.write(source, name)
        archive.writestr("front.json", _index(job_id, files))
    return buffer.getvalue()
