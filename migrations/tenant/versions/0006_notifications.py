"""notifications: what became of each notice's email; indexes for a user's list and unread count

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('notices', sa.Column('email_status', sa.String(length=20), nullable=True))
    op.add_column('notices', sa.Column('email_error', sa.Text(), nullable=True))
    op.create_index('ix_notices_unread', 'notices', ['user_id'], unique=False, postgresql_where=sa.text('read_at IS NULL'))
    op.create_index('ix_notices_user_created', 'notices', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_notices_user_created', table_name='notices')
    op.drop_index('ix_notices_unread', table_name='notices', postgresql_where=sa.text('read_at IS NULL'))
    op.drop_column('notices', 'email_error')
    op.drop_column('notices', 'email_status')
