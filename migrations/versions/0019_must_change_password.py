"""must change password: a staff account whose password someone else chose

An admin who creates a staff account or resets its password knows that password; the holder
must choose their own at the next login (`must_change_password`, cleared when they do).
Existing accounts keep the passwords their holders have: false.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 15:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
