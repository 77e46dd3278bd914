"""member cards with a version (lost cards), and where an activity takes place

`villagers.card_serial`: the version of the member card in the villager's hands; a reissue
(挂失补办) raises it and every card with an earlier version is refused. Existing rows get 0,
which is also what every card printed before this revision is read as, so those cards keep
working until their first reissue. `activities.place`: printed on the activity's poster.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('villagers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_serial', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('place', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('place')
    with op.batch_alter_table('villagers', schema=None) as batch_op:
        batch_op.drop_column('card_serial')
