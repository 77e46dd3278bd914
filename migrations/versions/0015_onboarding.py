"""households keep their roster key (户编号)

A re-imported roster updates the households it names instead of adding them again, and an
opening-balance file names households by the same key: both need the key the roster gave.
Households imported before this revision have none (they are named by their id).

Opening balances (期初结转, ledger kind `adjust`) are kept out of the ranked score: the
monthly totals get their own column for them. No `adjust` entry was written before this
revision, so nothing is moved.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('month_totals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=40), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_households_village_id_code'),
                                          ['village_id', 'code'])


def downgrade():
    with op.batch_alter_table('month_totals', schema=None) as batch_op:
        batch_op.drop_column('opening')
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_households_village_id_code'), type_='unique')
        batch_op.drop_column('code')
