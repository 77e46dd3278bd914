"""list indexes: the long lists of the API read newest first from an index

The claim, order (redemption) and audit lists page newest first (`ORDER BY id DESC`) within
a household, a village, a shop, a status or a township. Without an index ending in `id` for
each, PostgreSQL walked the whole table backwards by id until it had found a page's rows
(seconds at a county's size: bench/scale.py). The narrower indexes each new one begins with
are dropped (every write of a claim, order or audit line kept them up for nothing). Indexes
only: no data changes, and every name is created or dropped only if missing or present, so
the migration may run on a database that has some already.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 18:45:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_claims_household', 'claims', ['household_id', 'id']),
    ('ix_claims_village', 'claims', ['village_id', 'id']),
    ('ix_claims_village_status_id', 'claims', ['village_id', 'status', 'id']),
    ('ix_claims_status', 'claims', ['status', 'id']),
    ('ix_redemptions_village', 'redemptions', ['village_id', 'id']),
    ('ix_redemptions_village_status', 'redemptions', ['village_id', 'status', 'id']),
    ('ix_redemptions_shop', 'redemptions', ['shop_id', 'id']),
    ('ix_redemptions_status', 'redemptions', ['status', 'id']),
    ('ix_audit_log_township', 'audit_log', ['township_id', 'id']),
)
# Each the leading columns of one above, which serves every query these served.
COVERED = (
    ('ix_claims_household_id', 'claims', ['household_id']),
    ('ix_claims_village_status', 'claims', ['village_id', 'status']),
    ('ix_redemptions_village_id', 'redemptions', ['village_id']),
    ('ix_audit_log_township_id', 'audit_log', ['township_id']),
)


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False, if_not_exists=True)
    for name, table, _ in COVERED:
        op.drop_index(name, table_name=table, if_exists=True)


def downgrade():
    for name, table, columns in COVERED:
        op.create_index(name, table, columns, unique=False, if_not_exists=True)
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table, if_exists=True)
