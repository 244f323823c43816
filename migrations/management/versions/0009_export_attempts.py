"""exports and offboardings count their runs, so one that keeps failing ends failed

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tenant_exports', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('tenant_exports', 'attempts')
