"""a session opened by a tenant switch records the session it came from

A switch proves nothing new, so the session it opens is revoked with the one it was opened
from (auth_sessions.parent_id). Sessions switched before this revision have no parent.

auth_sessions is never pruned and can be large, and adding the column holds it ACCESS
EXCLUSIVE until the migration commits (no sign-in, refresh or request can read it meanwhile):
the foreign key is added NOT VALID, so PostgreSQL checks the rows written from now on without
scanning the existing ones, whose parent_id is NULL anyway (a NULL never violates it).

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('auth_sessions', sa.Column('parent_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f('fk_auth_sessions_parent_id_auth_sessions'), 'auth_sessions', 'auth_sessions',
                          ['parent_id'], ['id'], postgresql_not_valid=True)
    op.create_index('ix_auth_sessions_parent_id', 'auth_sessions', ['parent_id'], unique=False,
                    postgresql_where=sa.text('parent_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_auth_sessions_parent_id', table_name='auth_sessions',
                  postgresql_where=sa.text('parent_id IS NOT NULL'))
    op.drop_constraint(op.f('fk_auth_sessions_parent_id_auth_sessions'), 'auth_sessions', type_='foreignkey')
    op.drop_column('auth_sessions', 'parent_id')
