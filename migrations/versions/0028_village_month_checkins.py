"""village month check-ins: /metrics sums a row per village and month, not every check-in

`/metrics` counted the `checkins` table at every scrape. That table grows with every meeting
a county holds, about 700,000 rows a year in a county of 300 villages, and counting 5,000,000
rows takes about 135 ms. Each village month now keeps its count of check-ins, written with
its other rows as a check-in commits. The counts start from the check-ins already
recorded, each counted in the month of its moment in APP_TIMEZONE, as `flask ledger
rebuild-counts` counts them. A month that has check-ins but no ledger entries gets a row of
its own.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 07:20:00.000000

"""
from collections import Counter
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa
from flask import current_app

import points.models.base


# revision identifiers, used by Alembic.
revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


checkins = sa.table('checkins', sa.column('village_id', sa.Integer()),
                    sa.column('checked_in_at',
                              points.models.base.UTCDateTime(timezone=True)))
months = sa.table('village_month_totals', sa.column('village_id', sa.Integer()),
                  sa.column('month', sa.String()), sa.column('checkins', sa.Integer()))


def upgrade():
    op.add_column('village_month_totals',
                  sa.Column('checkins', sa.Integer(), server_default='0', nullable=False))
    # Written out here rather than by the app's code: a migration must not change meaning
    # when the code it was written with changes.
    tz = ZoneInfo(current_app.config["APP_TIMEZONE"])
    bind = op.get_bind()
    counted = Counter()
    rows = bind.execute(sa.select(checkins.c.village_id, checkins.c.checked_in_at)
                        .execution_options(yield_per=10_000))
    for village_id, moment in rows:
        counted[(village_id, moment.astimezone(tz).strftime('%Y-%m'))] += 1
    if not counted:
        return
    kept = set(bind.execute(sa.select(months.c.village_id, months.c.month)).all())
    found = [{'v': v, 'm': m, 'n': n} for (v, m), n in sorted(counted.items()) if (v, m) in kept]
    if found:  # one statement, many rows (executemany)
        bind.execute(months.update()
                     .where(months.c.village_id == sa.bindparam('v'),
                            months.c.month == sa.bindparam('m'))
                     .values(checkins=sa.bindparam('n')), found)
    op.bulk_insert(months, [{'village_id': v, 'month': m, 'checkins': n}
                            for (v, m), n in sorted(counted.items()) if (v, m) not in kept])


def downgrade():
    # A month kept only for its check-ins (no household has a month total there) has nothing
    # else to keep.
    op.execute("DELETE FROM village_month_totals WHERE NOT EXISTS (SELECT 1 FROM month_totals m "
               "WHERE m.village_id = village_month_totals.village_id "
               "AND m.month = village_month_totals.month)")
    with op.batch_alter_table('village_month_totals') as batch:
        batch.drop_column('checkins')
