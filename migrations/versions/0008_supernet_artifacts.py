"""one-shot supernet checkpoints live in the artifact store: nas_artifacts.kind may be `supernet` (a job's
checkpoint after an epoch, packed as one tar)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 03:40:00

The downgrade removes the stored supernet checkpoints (bytes and rows) before restoring the old constraint, which
refuses them: a job of the older version keeps its supernet on the worker's disk and trains it again there.
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _kinds(*kinds: str) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table('nas_artifacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_nas_artifacts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_nas_artifacts_kind'),
                                         _kinds('model', 'dataset', 'supernet'))


def downgrade() -> None:
    _remove_supernets()
    with op.batch_alter_table('nas_artifacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_nas_artifacts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_nas_artifacts_kind'), _kinds('model', 'dataset'))


def _remove_supernets() -> None:
    conn = op.get_bind()
    ids = conn.execute(sa.text("SELECT id FROM nas_artifacts WHERE kind = 'supernet'")).scalars().all()
    if not ids:
        return
    from optuna.artifacts.exceptions import ArtifactNotFound

    from nas_service.config import Settings
    from nas_service.db.artifacts import make_store

    settings = context.config.attributes.get("settings") or Settings()
    store = make_store(settings, conn)  # the database store deletes inside this migration's transaction
    for artifact_id in ids:
        try:
            store.remove(artifact_id)
        except (ArtifactNotFound, OSError):
            print(f"migration 0008 downgrade: supernet checkpoint {artifact_id} was already gone from the store",
                  file=sys.stderr)
    conn.execute(sa.text("DELETE FROM nas_artifacts WHERE kind = 'supernet'"))
