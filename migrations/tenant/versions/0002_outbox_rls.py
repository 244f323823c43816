"""Row Level Security on the tenant outbox: a tenant session sees only its own messages.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from migrations.tenant import rls

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    rls.enable('outbox')


def downgrade() -> None:
    op.execute("DROP POLICY tenant_isolation ON outbox")
    op.execute("ALTER TABLE outbox DISABLE ROW LEVEL SECURITY")
