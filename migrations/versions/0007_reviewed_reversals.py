"""reviewed reversals and veto withdrawals

A reversal (冲正) at or above the two-cadre threshold waits for a second reviewer as a row
of reversal_requests. The township may withdraw a posted veto (一票否决): the withdrawal is
a row of veto_withdrawals, and the household's bar flag points at it, so that boards and
rankings stop counting the flag. Nothing existing is rewritten: no flag is withdrawn yet.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import points.models.base


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reversal_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requested_at', points.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_by', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', points.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirm_note', sa.String(length=500), nullable=True),
    sa.Column('reversal_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('pending_confirmation','confirmed')", name=op.f('ck_reversal_requests_status')),
    sa.ForeignKeyConstraint(['confirmed_by'], ['users.id'], name=op.f('fk_reversal_requests_confirmed_by_users')),
    sa.ForeignKeyConstraint(['entry_id'], ['ledger_entries.id'], name=op.f('fk_reversal_requests_entry_id_ledger_entries')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_reversal_requests_household_id_households')),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_reversal_requests_requested_by_users')),
    sa.ForeignKeyConstraint(['reversal_id'], ['ledger_entries.id'], name=op.f('fk_reversal_requests_reversal_id_ledger_entries')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_reversal_requests_village_id_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reversal_requests')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_reversal_requests_entry_id'))
    )
    with op.batch_alter_table('reversal_requests', schema=None) as batch_op:
        batch_op.create_index('ix_reversal_requests_village_status', ['village_id', 'status'], unique=False)

    op.create_table('veto_withdrawals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('restored', sa.Integer(), nullable=False),
    sa.Column('vetoed_month', sa.String(length=7), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('withdrawn_by', sa.Integer(), nullable=False),
    sa.Column('withdrawn_at', points.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_veto_withdrawals_claim_id_claims')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_veto_withdrawals_household_id_households')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_veto_withdrawals_village_id_villages')),
    sa.ForeignKeyConstraint(['withdrawn_by'], ['users.id'], name=op.f('fk_veto_withdrawals_withdrawn_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_veto_withdrawals')),
    sa.UniqueConstraint('claim_id', name=op.f('uq_veto_withdrawals_claim_id'))
    )
    with op.batch_alter_table('veto_withdrawals', schema=None) as batch_op:
        batch_op.create_index('ix_veto_withdrawals_village_month', ['village_id', 'month'], unique=False)

    with op.batch_alter_table('household_flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawal_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_household_flags_withdrawal_id_veto_withdrawals'),
            'veto_withdrawals', ['withdrawal_id'], ['id'])


def downgrade():
    with op.batch_alter_table('household_flags', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_household_flags_withdrawal_id_veto_withdrawals'), type_='foreignkey')
        batch_op.drop_column('withdrawal_id')

    with op.batch_alter_table('veto_withdrawals', schema=None) as batch_op:
        batch_op.drop_index('ix_veto_withdrawals_village_month')
    op.drop_table('veto_withdrawals')

    with op.batch_alter_table('reversal_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_reversal_requests_village_status')
    op.drop_table('reversal_requests')
