"""a rule item says whether it is scored by the hour at check-out (`hourly`)

Until this revision a per-unit item was scored from the hours between check-in and check-out
when its unit read as hours (小时, 时, hour, hours, h). Each stored item version gets the
column `hourly`, filled by that same rule, so every item keeps being scored as it was; an
item may now say `hourly` itself, whatever its unit. A version's stored data is left as it
is: the code reads an item without `hourly` by the same rule.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 17:00:00.000000

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# The units that meant "by the hour" before this revision, as the code read them then.
HOUR_UNITS = frozenset({"小时", "时", "hour", "hours", "h"})

versions = sa.table(
    'rule_item_versions',
    sa.column('id', sa.Integer()),
    sa.column('data', sa.JSON()),
    sa.column('hourly', sa.Boolean()),
)


def _hourly(data):
    if isinstance(data, str):  # a driver that hands JSON back as text
        data = json.loads(data)
    data = data or {}
    if isinstance(data.get('hourly'), bool):
        return data['hourly']
    unit = data.get('unit')
    return data.get('kind') == 'per_unit' and (unit or '').strip().lower() in HOUR_UNITS


def upgrade():
    with op.batch_alter_table('rule_item_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hourly', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    bind = op.get_bind()
    hourly_ids = [row.id for row in bind.execute(sa.select(versions.c.id, versions.c.data))
                  if _hourly(row.data)]
    if hourly_ids:
        bind.execute(versions.update().where(versions.c.id.in_(hourly_ids))
                     .values(hourly=True))


def downgrade():
    # The code before this revision refuses an item with a key it does not know: a version
    # written since that says `hourly` itself (one whose unit says otherwise) loses the key,
    # and is read by its unit again.
    bind = op.get_bind()
    for row in bind.execute(sa.select(versions.c.id, versions.c.data)).all():
        data = json.loads(row.data) if isinstance(row.data, str) else row.data
        if isinstance(data, dict) and 'hourly' in data:
            data = {key: value for key, value in data.items() if key != 'hourly'}
            bind.execute(versions.update().where(versions.c.id == row.id).values(data=data))
    with op.batch_alter_table('rule_item_versions', schema=None) as batch_op:
        batch_op.drop_column('hourly')
