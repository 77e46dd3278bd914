"""a village's audit log by id: its list, newest first, and its count from the index alone

A village's audit log (`/audit?village_id=`, the console's 操作日志 of one village) is listed
newest first by id and counted up to 10,000. The index on (village, at) gave neither the
order nor the township a township admin's scope adds, so PostgreSQL intersected it with the
township's index and read every entry of the village from the table, then sorted: 7 ms for
the first page and 7 ms for the count of a village's 3,400 entries in bench/scale.py, under
0.1 ms and 0.7 ms with this one. It replaces the (village, at) index: the time filter
(`since`, `until`) is read from the index too (PostgreSQL's INCLUDE carries the township and
the moment; SQLite has no INCLUDE and indexes (village, id)). An index only: no data
changes.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 04:55:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_audit_log_village_at', table_name='audit_log')
    op.create_index(
        'ix_audit_log_village',
        'audit_log',
        ['village_id', 'id'],
        unique=False,
        postgresql_include=['township_id', 'at'],
    )


def downgrade():
    op.drop_index('ix_audit_log_village', table_name='audit_log')
    op.create_index('ix_audit_log_village_at', 'audit_log', ['village_id', 'at'], unique=False)
