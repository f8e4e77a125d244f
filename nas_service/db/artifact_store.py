"""An Optuna `ArtifactStore` inside the service's own database: workers on any machine need nothing but its URL.

No maintained package provides one (Optuna ships filesystem, Boto3 and GCS stores). Files are cut into
`CHUNK_BYTES` rows of `nas_artifact_chunks`, written in one transaction (a writer killed half-way leaves
nothing) and read back one chunk at a time, so neither side holds a whole file in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

import sqlalchemy as sa
from optuna.artifacts.exceptions import ArtifactNotFound

from nas_service.db.models import ArtifactChunk

CHUNK_BYTES = 1 << 20
CHUNKS = sa.Table("nas_artifact_chunks", ArtifactChunk.metadata)
"""The table, typed for Core statements."""


class _ChunkReader(io.RawIOBase):
    """Reads an artifact's chunks in order, fetching the next one only when the last is used up."""

    def __init__(self, connect: Callable[[], AbstractContextManager[sa.Connection]], artifact_id: str,
                 first: bytes) -> None:
        self.connect, self.artifact_id = connect, artifact_id
        self.buffer, self.seq = first, 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self.buffer:
            self.seq += 1
            with self.connect() as conn:
                chunk = conn.execute(sa.select(CHUNKS.c.data).where(
                    CHUNKS.c.artifact_id == self.artifact_id, CHUNKS.c.seq == self.seq)).scalar()
            if chunk is None:
                return 0
            self.buffer = bytes(chunk)
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


class DatabaseArtifactStore:
    """Optuna's `ArtifactStore` protocol over the `nas_artifact_chunks` table. Bound to an engine (each call its
    own transaction) or, in a migration, to the migration's connection and transaction."""

    def __init__(self, bind: sa.Engine | sa.Connection) -> None:
        self.bind = bind

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Connection):
            yield self.bind
        else:
            with self.bind.begin() as conn:
                yield conn

    def open_reader(self, artifact_id: str) -> BinaryIO:
        with self._begin() as conn:
            first = conn.execute(sa.select(CHUNKS.c.data).where(
                CHUNKS.c.artifact_id == artifact_id, CHUNKS.c.seq == 0)).scalar()
        if first is None:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in the database store")
        return io.BufferedReader(_ChunkReader(self._begin, artifact_id, bytes(first)), CHUNK_BYTES)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        with self._begin() as conn:
            seq = 0
            while True:
                chunk = _read_full(content_body, CHUNK_BYTES)
                if chunk or seq == 0:  # an empty file still has its chunk 0, so that it exists
                    conn.execute(sa.insert(CHUNKS), {"artifact_id": artifact_id, "seq": seq, "data": chunk})
                if len(chunk) < CHUNK_BYTES:
                    return
                seq += 1

    def remove(self, artifact_id: str) -> None:
        with self._begin() as conn:
            gone = conn.execute(sa.delete(CHUNKS).where(CHUNKS.c.artifact_id == artifact_id)).rowcount
        if not gone:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in the database store")


def _read_full(body: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at the end: a pipe or a socket may return less before its end."""
    parts, got = [], 0
    while got < size:
        part = body.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
