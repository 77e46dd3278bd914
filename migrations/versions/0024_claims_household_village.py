"""claims household index carries the village: a township admin's list of one household
from the index alone

A township admin's claim list of one household (`/claims?household_id=`) is the household's
claims in the admin's villages. With the index on (household, id) alone PostgreSQL either
intersected it with the index of every village of the township or joined the villages to the
table row by row, by how its statistics happened to come out: 1.5 to 9 ms at 10M ledger
entries (bench/scale.py), against 0.3 ms when the index carries the village (INCLUDE) and the
page's keys and count are read from it alone. Rebuilt on PostgreSQL only (SQLite has no
INCLUDE; its index stays as it was). An index only: no data changes.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 22:05:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def _rebuild(include):
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_claims_household', table_name='claims')
    op.create_index(
        'ix_claims_household',
        'claims',
        ['household_id', 'id'],
        unique=False,
        postgresql_include=include,
    )


def upgrade():
    _rebuild(['village_id'])


def downgrade():
    _rebuild([])
