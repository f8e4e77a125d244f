"""Datasets uploaded over REST (`services.uploads`): a streamed `.npz` or zip of class folders, checked as `nas
search` checks a dataset, kept in the artifact store and owned by the uploader."""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from nas_service.api.deps import AUTH_RESPONSES, Ctx, DbSession, User
from nas_service.api.schemas import MAX_ID, DatasetOut, ErrorOut
from nas_service.services import uploads
from nas_service.spec import Plain

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=AUTH_RESPONSES)
DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The id `POST /datasets` answered.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut,
                                                     "description": "No such dataset (or not yours)."}}


@router.post("", response_model=DatasetOut, status_code=status.HTTP_201_CREATED, max_body_size=2**62, responses={
    413: {"model": ErrorOut, "description": "Over the per-upload limit or the user's quota."},
    422: {"description": "Not a dataset `nas search` would accept; the message names the problem."}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}})
async def upload_dataset(request: Request, user: User, ctx: Ctx, name: Annotated[str, Plain, Query(
        min_length=5, max_length=200, description="File name ending in .npz or .zip (a zip of one folder of images "
                                                  "per class).")]) -> DatasetOut:
    """Upload a dataset as the raw request body (streamed to disk, never held in memory): a `.npz` with `x_train`,
    `y_train`, `x_test`, `y_test` (and optionally `classes`), or a `.zip` of class folders. Jobs name it
    `upload:<id>`."""
    uploads.format_of(name)

    def limit() -> tuple[int, uploads.DatasetTooLargeError]:
        with ctx.sessions() as session:
            return uploads.room(session, ctx.settings, user, name)

    most, too_large = await run_in_threadpool(limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most:
        raise too_large
    with tempfile.TemporaryDirectory() as scratch:
        path = FilePath(scratch) / "upload"
        size = 0
        with open(path, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > most:
                    raise too_large
                out.write(chunk)

        def keep() -> uploads.DatasetView:
            with ctx.sessions() as session:
                return uploads.add(session, ctx.store, ctx.settings, owner=user, name=name, path=path)

        return DatasetOut.model_validate(await run_in_threadpool(keep))


@router.get("", response_model=list[DatasetOut])
def list_datasets(user: User, session: DbSession) -> list[DatasetOut]:
    """Your uploaded datasets, oldest first."""
    return [DatasetOut.model_validate(v) for v in uploads.list_owned(session, user)]


@router.get("/{dataset_id}", response_model=DatasetOut, responses=NOT_FOUND)
def get_dataset(dataset_id: DatasetId, user: User, session: DbSession) -> DatasetOut:
    return DatasetOut.model_validate(uploads.get(session, dataset_id, owner=user))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses={
    **NOT_FOUND, 409: {"model": ErrorOut, "description": "A queued or running job uses it."}})
def delete_dataset(dataset_id: DatasetId, user: User, session: DbSession, ctx: Ctx) -> Response:
    """Delete one of your datasets and its file in the artifact store."""
    uploads.delete(session, ctx.store, dataset_id, owner=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
