"""datasets uploaded over REST: nas_datasets (owner, name, format, classes, shapes; the file is an artifact)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'nas_datasets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=300), nullable=False),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('artifact_id', sa.String(length=64), nullable=False),
        sa.Column('classes', sa.JSON(), nullable=False),
        sa.Column('train_shape', sa.JSON(), nullable=False),
        sa.Column('test_shape', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("format IN ('npz', 'zip')", name=op.f('ck_nas_datasets_format')),
        sa.ForeignKeyConstraint(['artifact_id'], ['nas_artifacts.id'],
                                name=op.f('fk_nas_datasets_artifact_id_nas_artifacts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_nas_datasets')),
    )
    with op.batch_alter_table('nas_datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nas_datasets_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('nas_datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nas_datasets_owner'))
    op.drop_table('nas_datasets')
