"""village month items and counts, claims.approvals: county-sized statistics, metrics, 今日


The statistics page summed every score entry of the month of the township's accounts (an
index probe per account, and ten times the rows in a county ten times as busy).
`village_month_items` keeps per village, month, rule item version and kind the count and
sum of those entries, written as the last writes of each transaction that appends entries
(points.village_totals). Filled here from the ledger. The 12-month trend counted every
household month of the township with earnings; `village_month_totals.participating` keeps
that count per village and month, filled here from `month_totals`. /metrics counted
every posted claim and fulfilled order at each scrape; the village months keep how many
entries posted a claim or fulfilled an order, filled here from the ledger. The console's
今日 told a claim waiting for a first review from one waiting for a second by probing each
pending claim's approvals; `claims.approvals` keeps their count, indexed with the status.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

NEW_COUNTS = ('participating', 'claims_posted', 'redemptions')


def upgrade():
    op.create_table('village_month_items',
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('rule_item_version_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('entries', sa.Integer(), server_default='0', nullable=False),
    sa.Column('amount', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_village_month_items_village_id_villages')),
    sa.PrimaryKeyConstraint('village_id', 'month', 'rule_item_version_id', 'kind', name=op.f('pk_village_month_items'))
    )
    # Written out here: a migration must not change meaning when the code changes. Score
    # entries: awards and deductions, and reversals of them (not of an opening balance or an
    # expiry); 0 for an entry without a rule item.
    op.execute(
        'INSERT INTO village_month_items '
        '(village_id, month, rule_item_version_id, kind, entries, amount) '
        'SELECT a.village_id, e.month, COALESCE(e.rule_item_version_id, 0), e.kind, '
        'COUNT(*), SUM(e.amount) '
        'FROM ledger_entries e JOIN accounts a ON a.id = e.account_id '
        'LEFT JOIN ledger_entries r ON r.id = e.reverses_id '
        "WHERE e.kind IN ('earn', 'deduct') "
        "OR (e.kind = 'reverse' AND r.kind IN ('earn', 'deduct')) "
        'GROUP BY a.village_id, e.month, COALESCE(e.rule_item_version_id, 0), e.kind'
    )


    with op.batch_alter_table('village_month_totals') as batch_op:
        for name in NEW_COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default='0', nullable=False))
    op.execute(
        'UPDATE village_month_totals SET participating = s.n FROM ('
        'SELECT village_id, month, COUNT(*) AS n FROM month_totals WHERE earned > 0 '
        'GROUP BY village_id, month) AS s '
        'WHERE s.village_id = village_month_totals.village_id '
        'AND s.month = village_month_totals.month'
    )
    op.execute(
        'UPDATE village_month_totals SET claims_posted = s.posted, redemptions = s.redeemed '
        'FROM (SELECT a.village_id, e.month, COUNT(e.claim_id) AS posted, '
        "SUM(CASE WHEN e.kind = 'redeem' THEN 1 ELSE 0 END) AS redeemed "
        'FROM ledger_entries e JOIN accounts a ON a.id = e.account_id '
        'GROUP BY a.village_id, e.month) AS s '
        'WHERE s.village_id = village_month_totals.village_id '
        'AND s.month = village_month_totals.month'
    )
    # Each claim's count of approvals, for the console's review lists (今日).
    with op.batch_alter_table('claims') as batch_op:
        batch_op.add_column(sa.Column('approvals', sa.Integer(), server_default='0', nullable=False))
    op.execute(
        'UPDATE claims SET approvals = s.n FROM ('
        'SELECT claim_id, COUNT(*) AS n FROM claim_approvals GROUP BY claim_id) AS s '
        'WHERE s.claim_id = claims.id'
    )
    op.create_index('ix_claims_status_approvals', 'claims', ['status', 'approvals', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_claims_status_approvals', table_name='claims')
    with op.batch_alter_table('claims') as batch_op:
        batch_op.drop_column('approvals')
    with op.batch_alter_table('village_month_totals') as batch_op:
        for name in reversed(NEW_COUNTS):
            batch_op.drop_column(name)
    op.drop_table('village_month_items')
