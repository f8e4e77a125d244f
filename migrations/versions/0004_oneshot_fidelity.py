"""trials and candidates record the fidelity of their accuracy (standalone training or one-shot inheritance);
confirmed candidates keep their one-shot accuracy beside the standalone one

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('nas_trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fidelity', sa.String(length=16), server_default='standalone',
                                      nullable=False))
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fidelity', sa.String(length=16), server_default='standalone',
                                      nullable=False))
        batch_op.add_column(sa.Column('oneshot_accuracy', sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.drop_column('oneshot_accuracy')
        batch_op.drop_column('fidelity')
    with op.batch_alter_table('nas_trials', schema=None) as batch_op:
        batch_op.drop_column('fidelity')
