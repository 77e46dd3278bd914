"""shop village index: a township admin's count of a shop's orders from the index alone

A township admin's order list of one shop (`/redemptions?shop_id=`) is the shop's orders in
the admin's villages; counting them (up to the lists' cap) intersected the shop's index with
each village's, then read the table, at every request: four times as long for a shop ten
times as busy (bench/scale.py). An index on (shop, village) answers the count from the index
alone. An index only: no data changes, created or dropped only if missing or present.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 02:25:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_redemptions_shop_village',
        'redemptions',
        ['shop_id', 'village_id'],
        unique=False,
        if_not_exists=True,
    )


def downgrade():
    op.drop_index('ix_redemptions_shop_village', table_name='redemptions', if_exists=True)
