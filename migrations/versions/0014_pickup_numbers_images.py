"""pickup numbers of open orders; reward pictures stored by the service

`redemptions.pickup_code`: the 6-digit number a clerk may type instead of scanning the
pickup QR, unique among a shop's reserved orders (a partial unique index). Orders placed
before this revision have none and are picked up by their QR as before.

`rewards.image_name`: the reward's picture, checked and re-encoded by the service and
stored under UPLOAD_DIR/rewards/. The links typed into `rewards.image_url` before are kept
and still shown until a picture is uploaded or the link is cleared; no new one is accepted.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 13:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('redemptions', sa.Column('pickup_code', sa.String(length=6), nullable=True))
    op.create_index('uq_redemptions_open_pickup_code', 'redemptions',
                    ['shop_id', 'pickup_code'], unique=True,
                    sqlite_where=sa.text("status = 'reserved'"),
                    postgresql_where=sa.text("status = 'reserved'"))
    op.add_column('rewards', sa.Column('image_name', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('rewards') as batch_op:
        batch_op.drop_column('image_name')
    op.drop_index('uq_redemptions_open_pickup_code', table_name='redemptions')
    with op.batch_alter_table('redemptions') as batch_op:
        batch_op.drop_column('pickup_code')
