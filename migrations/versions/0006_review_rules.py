"""review rules: staff linked to their roster entry, withdrawn claims, one objection each

- users.villager_id was unique among all users; it is now unique among villager users only
  (a partial unique index), so that a cadre's staff account can be linked to the cadre's own
  roster entry while the cadre's WeChat user is bound to it too.
- claims may be withdrawn before they post: the status `withdrawn`, with the reason, who and
  when.
- one objection per villager per claim. A database that already holds repeated objections
  keeps each villager's latest on a claim (the one its status follows); the earlier ones are
  copied into the audit log, whole, before they are deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:12:41.508113

"""
from collections import defaultdict
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

import points.models.base


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

STATUSES_BEFORE = "status IN ('pending','approved','in_notice','objected','posted','rejected')"
STATUSES_AFTER = ("status IN ('pending','approved','in_notice','objected','posted','rejected',"
                  "'withdrawn')")
VILLAGERS_ONLY = sa.text("role = 'villager'")


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_villager_id'), type_='unique')
        batch_op.create_index('uq_users_villager_binding', ['villager_id'], unique=True,
                              sqlite_where=VILLAGERS_ONLY, postgresql_where=VILLAGERS_ONLY)

    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdraw_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column(
            'withdrawn_at', points.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_claims_withdrawn_by_users'), 'users', ['withdrawn_by'], ['id'])
        batch_op.drop_constraint(batch_op.f('ck_claims_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_claims_status'), STATUSES_AFTER)

    _keep_one_objection_each()
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_objections_claim_id_user_id'), ['claim_id', 'user_id'])


def _keep_one_objection_each():
    # Written out here rather than through the models: a migration must not change meaning
    # when the code it was written with changes.
    bind = op.get_bind()
    objections = sa.table(
        'objections', sa.column('id', sa.Integer()), sa.column('claim_id', sa.Integer()),
        sa.column('user_id', sa.Integer()), sa.column('reason', sa.String()),
        sa.column('status', sa.String()),
        sa.column('created_at', points.models.base.UTCDateTime(timezone=True)),
        sa.column('resolved_by', sa.Integer()),
        sa.column('resolved_at', points.models.base.UTCDateTime(timezone=True)),
        sa.column('resolution_note', sa.String()))
    claims = sa.table('claims', sa.column('id', sa.Integer()),
                      sa.column('village_id', sa.Integer()))
    villages = sa.table('villages', sa.column('id', sa.Integer()),
                        sa.column('township_id', sa.Integer()))
    rows = bind.execute(
        sa.select(objections, claims.c.village_id, villages.c.township_id)
        .join(claims, claims.c.id == objections.c.claim_id)
        .join(villages, villages.c.id == claims.c.village_id)
        .order_by(objections.c.id)
    ).mappings().all()
    by_villager = defaultdict(list)
    for row in rows:
        by_villager[(row['claim_id'], row['user_id'])].append(row)
    earlier = [row for repeated in by_villager.values() for row in repeated[:-1]]
    if not earlier:
        return
    now = datetime.now(UTC)
    op.bulk_insert(sa.table(
        'audit_log', sa.column('at', points.models.base.UTCDateTime(timezone=True)),
        sa.column('actor_id', sa.Integer()), sa.column('action', sa.String()),
        sa.column('object_type', sa.String()), sa.column('object_id', sa.String()),
        sa.column('township_id', sa.Integer()), sa.column('village_id', sa.Integer()),
        sa.column('before', sa.JSON()), sa.column('after', sa.JSON())), [
        {'at': now, 'actor_id': None, 'action': 'objection.repeat_removed',
         'object_type': 'objections', 'object_id': str(row['id']),
         'township_id': row['township_id'], 'village_id': row['village_id'],
         'before': {key: value.isoformat() if isinstance(value, datetime) else value
                    for key, value in row.items() if key not in ('village_id', 'township_id')},
         'after': None}
        for row in earlier])
    bind.execute(objections.delete().where(objections.c.id.in_([row['id'] for row in earlier])))


def downgrade():
    with op.batch_alter_table('objections', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_objections_claim_id_user_id'), type_='unique')

    # The old statuses have no `withdrawn`: such a claim reads as rejected, with its reason.
    claims = sa.table('claims', sa.column('status', sa.String()),
                      sa.column('reject_reason', sa.String()),
                      sa.column('rejected_by', sa.Integer()),
                      sa.column('withdraw_reason', sa.String()),
                      sa.column('withdrawn_by', sa.Integer()))
    op.execute(claims.update().where(claims.c.status == 'withdrawn').values(
        status='rejected', reject_reason=claims.c.withdraw_reason,
        rejected_by=claims.c.withdrawn_by))
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_claims_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_claims_status'), STATUSES_BEFORE)
        batch_op.drop_constraint(batch_op.f('fk_claims_withdrawn_by_users'), type_='foreignkey')
        batch_op.drop_column('withdrawn_at')
        batch_op.drop_column('withdrawn_by')
        batch_op.drop_column('withdraw_reason')

    # Unique among all users again: staff links to a villager another user has too go.
    users = sa.table('users', sa.column('role', sa.String()),
                     sa.column('villager_id', sa.Integer()))
    shared = (sa.select(users.c.villager_id).where(users.c.villager_id.is_not(None))
              .group_by(users.c.villager_id).having(sa.func.count() > 1))
    op.execute(users.update().where(users.c.role != 'villager',
                                    users.c.villager_id.in_(shared)).values(villager_id=None))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('uq_users_villager_binding', sqlite_where=VILLAGERS_ONLY,
                            postgresql_where=VILLAGERS_ONLY)
        batch_op.create_unique_constraint(batch_op.f('uq_users_villager_id'), ['villager_id'])
