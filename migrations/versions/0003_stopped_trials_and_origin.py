"""early-stopped trials get their own state; trials and candidates record who proposed them; candidates
record their CPU-fallback latency

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "state IN ('running', 'complete', 'infeasible', 'failed', 'stale')"
NEW = "state IN ('running', 'complete', 'stopped', 'infeasible', 'failed', 'stale')"


def upgrade() -> None:
    with op.batch_alter_table('nas_trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), server_default='sampler', nullable=False))
        batch_op.drop_constraint(op.f('ck_nas_trials_state'), type_='check')
        batch_op.create_check_constraint('state', NEW)
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), server_default='sampler', nullable=False))
        batch_op.add_column(sa.Column('cpu_ms', sa.Double(), server_default='0', nullable=False))
    # Trials stopped early before this revision were recorded as complete; their candidates say so.
    op.execute("UPDATE nas_trials SET state = 'stopped' WHERE state = 'complete' AND reused = false AND candidate_id "
               "IN (SELECT id FROM nas_candidates WHERE stopped_early = true)")


def downgrade() -> None:
    op.execute("UPDATE nas_trials SET state = 'complete' WHERE state = 'stopped'")
    with op.batch_alter_table('nas_candidates', schema=None) as batch_op:
        batch_op.drop_column('cpu_ms')
        batch_op.drop_column('origin')
    with op.batch_alter_table('nas_trials', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_nas_trials_state'), type_='check')
        batch_op.create_check_constraint('state', OLD)
        batch_op.drop_column('origin')
