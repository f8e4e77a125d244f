"""Jobs, their trials, Pareto fronts and candidates. Every route calls the same service function as the CLI.

A job owned by another user answers 404, exactly like a job that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from nas_service.api.datasets import api_job_spec
from nas_service.api.deps import AUTH_RESPONSES, Ctx, DbSession, User
from nas_service.api.result_keys import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Order, result_key, trials_key
from nas_service.api.schemas import (
    BAD_BODY,
    MAX_ID,
    CandidateOut,
    ErrorOut,
    FrontPointOut,
    JobOut,
    Page,
    TrialOut,
    TrialPointsOut,
)
from nas_service.services import jobs as service
from nas_service.services.plot import trial_points
from nas_service.services.views import CandidateView, FrontPoint
from nas_service.spec import JobSpec

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=AUTH_RESPONSES)

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="A job id.")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID, description="A candidate id within the job.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such job or candidate "
                                                    "for this user."}}


def _front_point(point: FrontPoint) -> FrontPointOut:
    return FrontPointOut.model_validate({**point.to_dict(), "has_tflite": bool(point.tflite_artifact)})


def _candidate(view: CandidateView, layers: bool) -> CandidateOut:
    data = view.to_dict()
    data["has_tflite"] = bool(view.tflite_artifact)
    data["latency_interval_pct"] = view.latency.get("interval_pct")  # absent in rows priced before intervals
    data["latency_extrapolated"] = bool(view.latency.get("extrapolated", False))
    data["latency_extrapolation"] = view.latency.get("extrapolation", [])
    if layers:
        data["layers"] = view.analysis.get("layers", [])
        data["latency_layers"] = view.latency.get("layers", [])
    return CandidateOut.model_validate(data)


@router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED, responses=BAD_BODY)
def create_job(spec: JobSpec, user: User, session: DbSession, ctx: Ctx) -> JobOut:
    """Queue a search job (the same spec as `nas search`); a worker runs it.

    `dataset` is `digits`, `keras:NAME`, `tfds:NAME`, `upload:ID` (one of your `POST /datasets`) or a folder or
    `.npz` file inside the server's data directory (`NAS_DATA_DIR`, a path relative to it); no other server path.
    """
    from nas_service.services.uploads import check_owned

    spec = api_job_spec(spec, ctx.settings.data_dir)
    check_owned(session, spec.dataset, user)
    return JobOut.model_validate(service.create_job(session, spec, owner=user))


@router.get("", response_model=Page[JobOut])
def list_jobs(user: User, session: DbSession, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT,
              status: JobStatus | None = None) -> Page[JobOut]:
    """The caller's jobs, newest first."""
    page = service.list_jobs(session, owner=user, status=status, offset=offset, limit=limit)
    return Page[JobOut](items=[JobOut.model_validate(j) for j in page.items], total=page.total,
                        offset=page.offset, limit=page.limit)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: JobId, user: User, session: DbSession) -> JobOut:
    return JobOut.model_validate(service.get_job(session, job_id, owner=user))


@router.post("/{job_id}/cancel", response_model=JobOut,
             responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The job already ended."}})
def cancel_job(job_id: JobId, user: User, session: DbSession) -> JobOut:
    """Stop a queued or running job: no new trials start; finished trials are kept."""
    return JobOut.model_validate(service.cancel_job(session, job_id, owner=user))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The job is queued or running: "
                                                                               "cancel it first."}})
def delete_job(job_id: JobId, user: User, session: DbSession, ctx: Ctx) -> Response:
    """Delete one of your jobs that is not queued or running, with its trials, candidates, Optuna study and
    int8 files (as `nas rm`)."""
    service.remove_job(session, job_id, owner=user, store=ctx.store, database_url=ctx.settings.database_url,
                       artifacts_dir=ctx.settings.artifacts_dir)
    ctx.results.forget_job(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/trials", response_model=Page[TrialOut], responses=NOT_FOUND)
async def list_trials(job_id: JobId, user: User, ctx: Ctx, request: Request, offset: Offset = 0,
                      limit: Limit = DEFAULT_LIMIT, sort: service.TrialSort = "number",
                      order: Order = "asc") -> Response:
    """One page of the job's trials, sorted by `sort` (trials without that value last)."""

    def produce(session: Session) -> Page[TrialOut]:
        page = service.list_trials(session, job_id, owner=user, offset=offset, limit=limit, sort=sort,
                                   descending=order == "desc")
        return Page[TrialOut](items=[TrialOut.model_validate(t) for t in page.items], total=page.total,
                              offset=page.offset, limit=page.limit)

    key = trials_key(job_id, offset, limit, sort, order)
    return await ctx.results.respond(request, ctx.sessions, user, job_id, key, produce)


@router.get("/{job_id}/points", response_model=TrialPointsOut, responses=NOT_FOUND)
async def get_points(job_id: JobId, user: User, ctx: Ctx, request: Request) -> Response:
    """Every scored trial as parallel columns: the compact payload behind the dashboard's plot."""

    def produce(session: Session) -> TrialPointsOut:
        return TrialPointsOut.model_validate(trial_points(session, job_id, owner=user))

    return await ctx.results.respond(request, ctx.sessions, user, job_id, result_key("points", job_id), produce)


@router.get("/{job_id}/front", response_model=Page[FrontPointOut], responses=NOT_FOUND)
async def get_front(job_id: JobId, user: User, ctx: Ctx, request: Request) -> Response:
    """The job's Pareto front (accuracy vs latency), fastest first."""

    def produce(session: Session) -> Page[FrontPointOut]:
        items = [_front_point(p) for p in service.get_front(session, job_id, owner=user)]
        return Page[FrontPointOut](items=items, total=len(items))

    return await ctx.results.respond(request, ctx.sessions, user, job_id, result_key("front", job_id), produce)


EMPTY_FRONT = ("or its front is still empty (the message says why: nothing finished yet, or every trial "
               "infeasible, stopped or failed)")


@router.get("/{job_id}/front/best", response_model=FrontPointOut, responses={404: {
    "model": ErrorOut, "description": f"No such job (or another user's), {EMPTY_FRONT}, or no front member at or "
                                      "under the limit (the message gives the fastest member's latency)."}})
async def best_under(job_id: JobId, user: User, ctx: Ctx, request: Request,
                     max_latency_ms: Annotated[float, Query(gt=0, le=1e9, allow_inf_nan=False,
                                                            description="Latency limit T in ms.")]
                     ) -> Response:
    """The most accurate front member no slower than `max_latency_ms`; 404 when there is none."""

    def produce(session: Session) -> FrontPointOut:
        front = service.require_front(session, job_id, owner=user)
        point = service.best_under(session, job_id, max_latency_ms, owner=user)
        if point is None:
            raise service.NotFoundError(f"no member of job {job_id}'s front runs in {max_latency_ms:g} ms or less: "
                                        f"its fastest member takes {front[0].latency_ms:.4g} ms")
        return _front_point(point)

    key = result_key("best", job_id, max_latency_ms)
    return await ctx.results.respond(request, ctx.sessions, user, job_id, key, produce)


@router.get("/{job_id}/front/knee", response_model=FrontPointOut, responses={404: {
    "model": ErrorOut, "description": f"No such job (or another user's), {EMPTY_FRONT}."}})
async def knee(job_id: JobId, user: User, ctx: Ctx, request: Request) -> Response:
    """The knee of the front (best trade-off); 404 while the front is empty, as `front/best` answers."""

    def produce(session: Session) -> FrontPointOut:
        point = service.knee(session, job_id, owner=user)
        if point is None:
            raise service.EmptyFrontError(service.empty_front_reason(session, job_id, owner=user))
        return _front_point(point)

    return await ctx.results.respond(request, ctx.sessions, user, job_id, result_key("knee", job_id), produce)


@router.get("/{job_id}/candidates/{candidate_id}", response_model=CandidateOut, responses=NOT_FOUND)
def get_candidate(job_id: JobId, candidate_id: CandidateId, user: User, session: DbSession,
                  layers: Annotated[bool, Query(description="Include the layer table and latency breakdown.")] = True
                  ) -> CandidateOut:
    """One candidate: its analysis, latency breakdown, accuracies and training curve."""
    return _candidate(service.get_candidate(session, job_id, candidate_id, owner=user), layers)


@router.get("/{job_id}/front.zip", response_class=StreamingResponse, responses={
    **NOT_FOUND, 200: {"content": {"application/zip": {}}, "description": "Every front member's int8 TFLite file, "
                                                                          "fastest first, and front.json."},
    409: {"model": ErrorOut, "description": "No front yet, an estimator job (nothing trained) or missing files."}})
def download_front(job_id: JobId, user: User, session: DbSession, ctx: Ctx) -> StreamingResponse:
    """The job's whole Pareto front as a zip: `NN_<latency>ms_<accuracy>.tflite` files and `front.json`, streamed
    from the artifact store as it is written."""
    from nas_service.services.export import front_files, stream_front_zip

    files = front_files(session, job_id, owner=user)
    return StreamingResponse(stream_front_zip(ctx.store, job_id, files), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="job{job_id}_front.zip"'})


@router.get("/{job_id}/candidates/{candidate_id}/tflite", response_class=StreamingResponse,
            responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}},
                                          "description": "The candidate's int8 TFLite file, checked against its "
                                                         "SHA-256 before the first byte is sent."},
                       409: {"model": ErrorOut, "description": "The stored copy fails its integrity check."}})
def download_tflite(job_id: JobId, candidate_id: CandidateId, user: User, session: DbSession,
                    ctx: Ctx) -> StreamingResponse:
    """The candidate's int8 TFLite model, from the artifact store."""
    from nas_service.db.artifacts import open_checked
    from nas_service.services.export import candidate_model

    meta, what = candidate_model(session, job_id, candidate_id, owner=user)
    copy = open_checked(ctx.store, meta, what=what)

    def body() -> Iterator[bytes]:
        with copy:
            while block := copy.read(1 << 20):
                yield block

    return StreamingResponse(body(), media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="job{job_id}_candidate{candidate_id}.tflite"',
        "Content-Length": str(meta.size), "X-Content-SHA256": meta.sha256})
