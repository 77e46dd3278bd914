"""monthly issued points by the deed's month, less reversed awards

The monthly budget's counter counted each claim in the month it was decided in, and kept a
reversed award's points. A claim now draws on the budget of its deed's month (the month it
counts in on the board and for the item's caps), and a reversed award gives its points
back. No column changes: the rows are set again from the claims, as
`flask ledger rebuild-issued` would, so that `flask ledger verify` agrees after upgrading.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00.000000

"""
from collections import defaultdict
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa
from flask import current_app

import points.models.base


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _utc(name):
    return sa.column(name, points.models.base.UTCDateTime(timezone=True))


claims = sa.table('claims', sa.column('id', sa.Integer()), sa.column('village_id', sa.Integer()),
                  sa.column('points', sa.Integer()), sa.column('status', sa.String()),
                  _utc('occurred_at'), _utc('decided_at'))
entries = sa.table('ledger_entries', sa.column('id', sa.Integer()),
                   sa.column('claim_id', sa.Integer()), sa.column('reverses_id', sa.Integer()))
monthly = sa.table('monthly_issued', sa.column('village_id', sa.Integer()),
                   sa.column('month', sa.String()), sa.column('issued', sa.Integer()))


def _refill(by_deed):
    """Set every village month from the claims: positive, in notice, objected or posted.
    `by_deed`: by the deed's month, less claims whose entry was reversed; else (downgrade)
    by the month they were decided in, as 0005 counted. Written out here: a migration must
    not change meaning when the code it was written with changes."""
    tz = ZoneInfo(current_app.config["APP_TIMEZONE"])
    counted = claims.c.occurred_at if by_deed else claims.c.decided_at
    stmt = sa.select(claims.c.village_id, counted, claims.c.points).where(
        claims.c.points > 0, claims.c.decided_at.is_not(None),
        claims.c.status.in_(('in_notice', 'objected', 'posted')))
    if by_deed:
        original, reversal = entries.alias('original'), entries.alias('reversal')
        stmt = stmt.where(claims.c.id.not_in(
            sa.select(original.c.claim_id)
            .join(reversal, reversal.c.reverses_id == original.c.id)
            .where(original.c.claim_id.is_not(None))))
    bind = op.get_bind()
    issued = defaultdict(int)
    for village_id, moment, amount in bind.execute(stmt):
        issued[(village_id, moment.astimezone(tz).strftime('%Y-%m'))] += amount
    bind.execute(monthly.delete())
    if issued:
        op.bulk_insert(monthly, [{'village_id': v, 'month': m, 'issued': n}
                                 for (v, m), n in sorted(issued.items())])


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("LOCK TABLE monthly_issued IN EXCLUSIVE MODE")
    _refill(by_deed=True)


def downgrade():
    _refill(by_deed=False)
