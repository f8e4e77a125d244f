"""A job's Pareto front as files: its members' int8 TFLite models, read from the artifact store and checked, with a
`front.json` index, into a directory (`nas export --front`) or a zip streamed as it is written (`front.zip`)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from optuna.artifacts._protocol import ArtifactStore
from sqlalchemy.orm import Session

from nas_service.db import artifacts
from nas_service.services.jobs import get_front, get_job


class ExportError(ValueError):
    """A front that has no model files to export; the message says why and what to do."""


@dataclass(frozen=True)
class FrontFile:
    name: str
    artifact: artifacts.ArtifactInfo
    what: str
    """Whose model it is, for errors: "candidate 3 of job 1"."""
    entry: dict[str, object]


def check_out_dir(directory: Path) -> None:
    """Raise `ExportError` unless `directory` is a directory or can be made one (no file in its way)."""
    for path in (directory, *directory.parents):
        if path.exists():
            if not path.is_dir():
                raise ExportError(f"cannot write into {directory}: {path} is a file, not a directory; choose "
                                  "another --out")
            return


def candidate_model(session: Session, job_id: int, candidate_id: int, *, owner: str | None = None
                    ) -> tuple[artifacts.ArtifactInfo, str]:
    """A candidate's int8 model artifact and whose it is; `ArtifactMissingError` naming the candidate if none."""
    from nas_service.services.jobs import get_candidate

    view = get_candidate(session, job_id, candidate_id, owner=owner)
    what = f"candidate {candidate_id} of job {job_id}"
    return artifacts.info(session, view.tflite_artifact, what=what), what


def front_files(session: Session, job_id: int, *, owner: str | None = None) -> list[FrontFile]:
    """Every front member's file (fastest first); `ExportError` if the front has none, or any member lacks one."""
    job = get_job(session, job_id, owner=owner)
    front = get_front(session, job_id, owner=owner)
    if not front:
        raise ExportError(f"job {job_id} has no Pareto front yet ({job.status}, {job.trials_done} trials done)")
    if job.spec.training.scorer == "estimate":
        raise ExportError(f"job {job_id} scored its candidates with the cheap accuracy estimator: there are no "
                          "trained models to export; run the search with `--scorer train`")
    missing = [p.candidate_id for p in front if not p.tflite_artifact]
    if missing:
        raise ExportError(f"job {job_id}: front candidates {missing} have no int8 TFLite file (exported with "
                          "training.export_int8)")
    files = []
    for rank, point in enumerate(front, 1):
        name = f"{rank:02d}_{point.latency_ms:.3f}ms_{point.accuracy:.4f}.tflite"
        what = f"candidate {point.candidate_id} of job {job_id}"
        files.append(FrontFile(name, artifacts.info(session, point.tflite_artifact, what=what), what,
                               {**point.to_dict(), "file": name}))
    return files


def _index(job_id: int, files: list[FrontFile]) -> str:
    """`front.json`: the job and every member's front point with its file name."""
    return json.dumps({"job": job_id, "front": [f.entry for f in files]}, indent=2)


def export_front(session: Session, store: ArtifactStore, job_id: int, out_dir: Path, *,
                 owner: str | None = None) -> list[Path]:
    """Write `NN_<latency>ms_<accuracy>.tflite` for every front member (fastest first) and `front.json`; each file is
    checked against its hash before it takes its name."""
    check_out_dir(out_dir)
    files = front_files(session, job_id, owner=owner)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc.strerror}; choose another --out") from None
    for f in files:
        partial = out_dir / f".{f.name}.partial"
        with open(partial, "wb") as out:
            for block in artifacts.chunks(store, f.artifact, what=f.what):
                out.write(block)
        partial.replace(out_dir / f.name)
    (out_dir / "front.json").write_text(_index(job_id, files))
    return [out_dir / f.name for f in files]


class _Sink:
    """A write-only, unseekable file for `zipfile` that hands on what was written since the last `take`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def stream_front_zip(store: ArtifactStore, job_id: int, files: list[FrontFile]) -> Iterator[bytes]:
    """The zip of `front_files`, produced piece by piece (memory does not grow with the zip). A member failing its
    integrity check ends the stream with an error, so the download fails rather than completes corrupt."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        for f in files:
            with archive.open(f.name, "w", force_zip64=True) as member:
                for block in artifacts.chunks(store, f.artifact, what=f.what):
                    member.write(block)
                    yield sink.take()
        archive.writestr("front.json", _index(job_id, files))
    yield sink.take()


def export_inherited_front(session: Session, store: ArtifactStore, job_id: int, out: Path) -> list[Path]:
    """Write the int8 TFLite file of every front member of a one-shot job with the weights it inherits from the
    job's supernet (its newest checkpoint in the artifact store, checked; not retrained; batch-norm
    recalibrated), through `build_keras` and the int8 export, so a user can deploy without retraining; with a
    `front.json` index of each file's int8 accuracy."""
    from sqlalchemy.orm import sessionmaker

    from nas_service.controller.oneshot import calibration_batches, job_data
    from nas_service.controller.supernet_store import downloaded
    from nas_service.trainer.supernet import Supernet
    from nas_service.trainer.tflite_export import export_int8
    from nas_service.trainer.training import KERAS_STATE
    from search_spaces import decode, load_space

    job = get_job(session, job_id)
    spec = job.spec
    if spec.training.mode != "oneshot":
        raise ExportError(f"job {job_id} has no supernet to inherit weights from (training.mode "
                          f"{spec.training.mode}); export its front without --inherited")
    front = get_front(session, job_id)
    if not front:
        raise ExportError(f"job {job_id} has no Pareto front yet ({job.status}, {job.trials_done} trials done)")
    check_out_dir(out)
    data = job_data(spec.dataset, spec.training, spec.resolution or 32)
    net = Supernet(load_space(spec.space), num_classes=data.num_classes, resolution=data.resolution, seed=spec.seed)
    with downloaded(sessionmaker(session.get_bind(), expire_on_commit=False), store, job_id) as checkpoints:
        if checkpoints.load(net) is None:
            raise ExportError(f"job {job_id} has no supernet checkpoint in the artifact store to inherit weights "
                              "from (its supernet never finished an epoch); export its front without --inherited")
    written, index = [], []
    for rank, point in enumerate(front, 1):
        arch = decode(point.arch).with_classes(data.num_classes)
        net.calibrate(arch, calibration_batches(data, spec.training))
        path = out / f"{rank:02d}_{point.latency_ms:.3f}ms_inherited.tflite"
        with KERAS_STATE.candidate():
            exported = export_int8(net.to_keras(arch), data, path, seed=spec.seed)
        written.append(path)
        index.append({**point.to_dict(), "file": path.name, "weights": "inherited",
                      "inherited_float_accuracy": round(exported.float_accuracy, 5),
                      "inherited_int8_accuracy": round(exported.int8_accuracy, 5)})
    (out / "front.json").write_text(json.dumps({"job": job_id, "front": index}, indent=2))
    return written
