"""models live in the artifact store: nas_artifacts (hash, size, owner of each stored file), nas_artifact_chunks
(the database store's pieces); candidates refer to their int8 model by artifact id, and the files that
tflite_path pointed to are moved into the store (a candidate whose file is gone keeps no model)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 12:30:00
"""

import hashlib
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'nas_artifacts',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('filename', sa.String(length=300), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('model', 'dataset')", name=op.f('ck_nas_artifacts_kind')),
        sa.ForeignKeyConstraint(['job_id'], ['nas_jobs.id'], name=op.f('fk_nas_artifacts_job_id_nas_jobs'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_nas_artifacts')),
    )
    with op.batch_alter_table('nas_artifacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nas_artifacts_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nas_artifacts_owner'), ['owner'], unique=False)
    op.create_table(
        'nas_artifact_chunks',
        sa.Column('artifact_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('artifact_id', 'seq', name=op.f('pk_nas_artifact_chunks')),
    )
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tflite_artifact', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_nas_candidates_tflite_artifact_nas_artifacts'), 'nas_artifacts',
                                    ['tflite_artifact'], ['id'], ondelete='SET NULL')
    _move_files_into_the_store()
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.drop_column('tflite_path')


def _move_files_into_the_store() -> None:
    """Each candidate's file (absolute, under the artifacts directory, or relative to the working directory, as
    rows of earlier versions held it) goes into the configured store with its hash; the candidate keeps its id."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, job_id, tflite_path FROM nas_candidates WHERE tflite_path IS NOT NULL "
                                "ORDER BY id")).all()
    if not rows:
        return
    from nas_service.config import Settings
    from nas_service.db.artifacts import make_store

    settings = context.config.attributes.get("settings") or Settings()
    store = make_store(settings, conn)  # the database store writes inside this migration's transaction
    for cid, job_id, stored in rows:
        path = next((p for p in _places(Path(stored), settings.artifacts_dir) if p.is_file()), None)
        if path is None:
            print(f"migration 0005: candidate {cid} of job {job_id}: {stored} is gone; it keeps no model",
                  file=sys.stderr)
            continue
        data = path.read_bytes()
        artifact_id = str(uuid.uuid4())
        with open(path, "rb") as body:
            store.write(artifact_id, body)
        conn.execute(sa.text("INSERT INTO nas_artifacts (id, kind, job_id, filename, sha256, size, created_at) "
                             "VALUES (:id, 'model', :job, :name, :sha, :size, CURRENT_TIMESTAMP)"),
                     {"id": artifact_id, "job": job_id, "name": path.name, "sha": hashlib.sha256(data).hexdigest(),
                      "size": len(data)})
        conn.execute(sa.text("UPDATE nas_candidates SET tflite_artifact = :a WHERE id = :id"),
                     {"a": artifact_id, "id": cid})


def _places(stored: Path, artifacts_dir: Path) -> list[Path]:
    return [stored] if stored.is_absolute() else [artifacts_dir / stored, Path.cwd() / stored]


def downgrade() -> None:
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tflite_path', sa.Text(), nullable=True))
        batch_op.drop_constraint(batch_op.f('fk_nas_candidates_tflite_artifact_nas_artifacts'), type_='foreignkey')
        batch_op.drop_column('tflite_artifact')
    op.drop_table('nas_artifact_chunks')
    with op.batch_alter_table('nas_artifacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nas_artifacts_owner'))
        batch_op.drop_index(batch_op.f('ix_nas_artifacts_job_id'))
    op.drop_table('nas_artifacts')
