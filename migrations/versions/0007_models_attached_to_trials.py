"""models written outside a running trial are attached to their Optuna trial: the files migration 0005 moved into the
store and one-shot front members confirmed before this revision get the `artifacts:<id>` system attribute that
`optuna.artifacts.upload_artifact` writes (optuna-dashboard lists a trial's artifacts from it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:30:00

Safe to run on a live database: it only inserts rows into Optuna's `trial_system_attributes` (a table of Optuna's
RDB schema unchanged since Optuna 1.x: trial_id, key, value_json), keyed `artifacts:<artifact id>` with a fresh
uuid that no other attribute uses; it changes and deletes nothing, skips a model already attached to some trial
(so it is idempotent), and does nothing where Optuna's tables do not exist. A model is attached to the first
trial of its job that holds its candidate without reusing it; a candidate no trial holds (its trial rows gone)
stays unattached. The downgrade keeps the attributes: they are Optuna's metadata, valid without our tables, and
nothing tells them apart from those `upload_artifact` wrote.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPTUNA_TABLES = ("studies", "trials", "trial_system_attributes")


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    if not all(inspector.has_table(t) for t in OPTUNA_TABLES):
        return
    rows = conn.execute(sa.text(
        "SELECT a.id, a.filename, c.job_id, c.id FROM nas_artifacts a "
        "JOIN nas_candidates c ON c.tflite_artifact = a.id WHERE a.kind = 'model' ORDER BY c.id")).all()
    for artifact_id, filename, job_id, candidate_id in rows:
        key = f"artifacts:{artifact_id}"
        if conn.execute(sa.text("SELECT 1 FROM trial_system_attributes WHERE key = :key"), {"key": key}).first():
            continue
        trial_id = conn.execute(sa.text(
            "SELECT t.trial_id FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "JOIN nas_jobs j ON j.study_name = s.study_name "
            "JOIN nas_trials n ON n.job_id = j.id AND n.number = t.number "
            "WHERE j.id = :job AND n.candidate_id = :candidate ORDER BY n.reused, n.number"),
            {"job": job_id, "candidate": candidate_id}).scalar()
        if trial_id is None:
            continue
        meta = {"artifact_id": artifact_id, "filename": filename, "mimetype": "application/octet-stream",
                "encoding": None}  # optuna.artifacts.ArtifactMeta, as upload_artifact stores it (JSON text, as JSON)
        conn.execute(sa.text("INSERT INTO trial_system_attributes (trial_id, key, value_json) VALUES (:t, :k, :v)"),
                     {"t": trial_id, "k": key, "v": json.dumps(json.dumps(meta))})


def downgrade() -> None:
    pass
