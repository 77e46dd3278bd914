"""a refresh token remembers the token it was spent for

A refresh token spent again within REFRESH_REUSE_GRACE_SECONDS answers the pair it was spent
for: the spent row names its successor, and the successor keeps its JWT id so that the
server signs the very same tokens again. Rows from before carry neither; a token of theirs
spent twice ends its session as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jti', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('successor_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_refresh_tokens_successor_id_refresh_tokens'), 'refresh_tokens',
            ['successor_id'], ['id'])


def downgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_refresh_tokens_successor_id_refresh_tokens'), type_='foreignkey')
        batch_op.drop_column('successor_id')
        batch_op.drop_column('jti')
