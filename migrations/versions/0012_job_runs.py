"""the last run of each scheduled command, for /metrics

`job_runs`: one row per scheduled command (`flask claims post-due`, `flask ledger verify`,
`flask backup`…), written by the command itself when it ends; /metrics reads it, so a job
that stopped running or failing is seen whichever worker or server answers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import points.models.base


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

UTC_DATETIME = points.models.base.UTCDateTime(timezone=True)


def upgrade():
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_started_at', UTC_DATETIME, nullable=True),
    sa.Column('last_finished_at', UTC_DATETIME, nullable=True),
    sa.Column('last_ok', sa.Boolean(), nullable=True),
    sa.Column('last_success_at', UTC_DATETIME, nullable=True),
    sa.Column('last_failure_at', UTC_DATETIME, nullable=True),
    sa.Column('last_message', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )


def downgrade():
    op.drop_table('job_runs')
