"""the villages' time zone kept by the database; late postings for the next board

`app_settings` is one row: the time zone (APP_TIMEZONE) the stored months were cut in,
recorded here from the setting `flask db upgrade` runs under (so upgrade with the setting
the data was made under); the service refuses to start under another.

`late_postings`: entries counted in a month after its board was published, each noted on
the next board published after it. Filled from the ledger: an entry made after its month's
board was published is a late posting, noted by the first board of a later month published
after it, if any (the board that noted it, or should have: a published board never changes);
the others wait for the next board.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00.000000

"""
from collections import defaultdict
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
from flask import current_app

import points.models.base


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UTC_DATETIME = points.models.base.UTCDateTime(timezone=True)


def upgrade():
    op.create_table('app_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_app_settings_one_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_settings'))
    )
    op.create_table('late_postings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('noted_in', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['ledger_entries.id'], name=op.f('fk_late_postings_entry_id_ledger_entries')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_late_postings_household_id_households')),
    sa.ForeignKeyConstraint(['noted_in'], ['board_snapshots.id'], name=op.f('fk_late_postings_noted_in_board_snapshots')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_late_postings_village_id_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_late_postings')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_late_postings_entry_id'))
    )
    with op.batch_alter_table('late_postings', schema=None) as batch_op:
        batch_op.create_index('ix_late_postings_village_noted', ['village_id', 'noted_in'], unique=False)

    op.bulk_insert(sa.table(
        'app_settings', sa.column('id', sa.Integer()), sa.column('time_zone', sa.String()),
        sa.column('updated_at', UTC_DATETIME)),
        [{'id': 1, 'time_zone': current_app.config['APP_TIMEZONE'],
          'updated_at': datetime.now(UTC)}])
    _fill_late_postings()


def _fill_late_postings():
    # Written out here rather than read from the models: a migration must not change meaning
    # when the code it was written with changes. What scores is what points.ledger counts in
    # the boards' score: awards, deductions, adjustments and their reversals.
    scoring = ('earn', 'deduct', 'adjust')
    entries = sa.table(
        'ledger_entries', sa.column('id', sa.Integer()), sa.column('account_id', sa.Integer()),
        sa.column('kind', sa.String()), sa.column('amount', sa.Integer()),
        sa.column('month', sa.String()), sa.column('created_at', UTC_DATETIME),
        sa.column('reverses_id', sa.Integer()))
    original = entries.alias('original')
    accounts = sa.table(
        'accounts', sa.column('id', sa.Integer()), sa.column('village_id', sa.Integer()),
        sa.column('household_id', sa.Integer()))
    snapshots = sa.table(
        'board_snapshots', sa.column('id', sa.Integer()), sa.column('village_id', sa.Integer()),
        sa.column('period', sa.String()), sa.column('created_at', UTC_DATETIME))
    bind = op.get_bind()
    late = bind.execute(
        sa.select(entries.c.id, accounts.c.village_id, accounts.c.household_id,
                  entries.c.month, entries.c.amount, entries.c.created_at)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(snapshots, (snapshots.c.village_id == accounts.c.village_id)
              & (snapshots.c.period == entries.c.month))
        .outerjoin(original, original.c.id == entries.c.reverses_id)
        .where(entries.c.created_at > snapshots.c.created_at, entries.c.amount != 0,
               entries.c.kind.in_(scoring)
               | ((entries.c.kind == 'reverse') & original.c.kind.in_(scoring)))
        .order_by(entries.c.id)
    ).all()
    if not late:
        return
    boards = defaultdict(list)
    for board_id, village_id, period, created_at in bind.execute(
            sa.select(snapshots.c.id, snapshots.c.village_id, snapshots.c.period,
                      snapshots.c.created_at).order_by(snapshots.c.created_at, snapshots.c.id)):
        boards[village_id].append((board_id, period, created_at))
    rows = []
    for entry_id, village_id, household_id, month, amount, created_at in late:
        noted_in = next((board_id for board_id, period, published in boards[village_id]
                         if period > month and published > created_at), None)
        rows.append({'entry_id': entry_id, 'village_id': village_id,
                     'household_id': household_id, 'month': month, 'amount': amount,
                     'created_at': created_at, 'noted_in': noted_in})
    op.bulk_insert(sa.table(
        'late_postings', sa.column('entry_id', sa.Integer()),
        sa.column('village_id', sa.Integer()), sa.column('household_id', sa.Integer()),
        sa.column('month', sa.String()), sa.column('amount', sa.Integer()),
        sa.column('created_at', UTC_DATETIME), sa.column('noted_in', sa.Integer())), rows)


def downgrade():
    with op.batch_alter_table('late_postings', schema=None) as batch_op:
        batch_op.drop_index('ix_late_postings_village_noted')
    op.drop_table('late_postings')
    op.drop_table('app_settings')
