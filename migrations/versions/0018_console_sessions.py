"""console sessions: a browser's login to the staff console (管理后台) is an auth session too

The console keeps its login in an HttpOnly cookie rather than a bearer token. The cookie holds
the session's id and a secret; the session row keeps the secret's SHA-256 (`secret_hash`, null
for the API's sessions, which are never opened by a cookie) and when it was last used
(`last_seen_at`), for the idle timeout. Revoking works as for the API: logout, a disabled user
and a password reset set `revoked_at`.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 15:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import points.models.base


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('last_seen_at', points.models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('secret_hash')
