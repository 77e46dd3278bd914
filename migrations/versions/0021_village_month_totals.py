"""village month totals: the points report reads one row per village and month

The township's points report summed every household's month totals over all of history
(about 450,000 rows a township at 10M entries). `village_month_totals` keeps their sum per
village and month, written as the last write of each transaction that appends entries
(points.village_totals). Filled here from `month_totals`.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

COUNTERS = ('score', 'earned', 'deducted', 'redeemed', 'expired', 'opening')


def upgrade():
    op.create_table('village_month_totals',
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    *(sa.Column(name, sa.Integer(), server_default='0', nullable=False) for name in COUNTERS),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_village_month_totals_village_id_villages')),
    sa.PrimaryKeyConstraint('village_id', 'month', name=op.f('pk_village_month_totals'))
    )
    # Written out here: a migration must not change meaning when the code changes.
    columns = ', '.join(COUNTERS)
    sums = ', '.join(f'SUM({name})' for name in COUNTERS)
    op.execute(
        f'INSERT INTO village_month_totals (village_id, month, {columns}) '
        f'SELECT village_id, month, {sums} FROM month_totals GROUP BY village_id, month'
    )


def downgrade():
    op.drop_table('village_month_totals')
