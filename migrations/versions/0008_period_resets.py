"""period resets

The periodic reset of spendable points (定期清零) is recorded once per village and period
(period_resets, unique per village and period), instead of being guessed from the expire
entries on each account; the points of a reset period that open orders held when it ran are
recorded too (period_reset_holds), to expire if the order is voided. Nothing existing is
rewritten: a village's first run after this records its last ended period as where its
resets start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import points.models.base


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('period_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('cycle', sa.String(length=10), nullable=False),
    sa.Column('period_end', points.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('baseline', sa.Boolean(), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('ran_at', points.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("cycle IN ('quarterly','yearly')", name=op.f('ck_period_resets_cycle')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_period_resets_village_id_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_period_resets')),
    sa.UniqueConstraint('village_id', 'period', name=op.f('uq_period_resets_village_id_period'))
    )
    op.create_table('period_reset_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reset_id', sa.Integer(), nullable=False),
    sa.Column('redemption_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_period_reset_holds_points_positive')),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemptions.id'], name=op.f('fk_period_reset_holds_redemption_id_redemptions')),
    sa.ForeignKeyConstraint(['reset_id'], ['period_resets.id'], name=op.f('fk_period_reset_holds_reset_id_period_resets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_period_reset_holds')),
    sa.UniqueConstraint('reset_id', 'redemption_id', name=op.f('uq_period_reset_holds_reset_id_redemption_id'))
    )
    with op.batch_alter_table('period_reset_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_period_reset_holds_redemption_id'), ['redemption_id'], unique=False)


def downgrade():
    with op.batch_alter_table('period_reset_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_period_reset_holds_redemption_id'))
    op.drop_table('period_reset_holds')
    op.drop_table('period_resets')
