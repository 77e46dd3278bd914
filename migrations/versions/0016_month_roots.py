"""a closed month's board commits to every household's month (Merkle root)

The root over the village's households (id, month's board points, ledger balance and chain
head at the month's end) is kept with the published board, with its number of leaves. Months
closed before this revision have none.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('board_snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('month_root', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('month_leaves', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('board_snapshots', schema=None) as batch_op:
        batch_op.drop_column('month_leaves')
        batch_op.drop_column('month_root')
