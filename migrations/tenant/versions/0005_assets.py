"""assets: one row per uploaded file; outbox deliveries parked by admission control

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from migrations.tenant import rls

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('declared_type', sa.String(length=255), nullable=False),
    sa.Column('sniffed_type', sa.String(length=255), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('renditions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("status IN ('awaiting_upload', 'uploaded', 'processing', 'ready', 'rejected', 'deleted')", name=op.f('ck_assets_status')),
    sa.CheckConstraint('progress BETWEEN 0 AND 100', name=op.f('ck_assets_progress')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets'))
    )
    op.create_index(op.f('ix_assets_tenant_id'), 'assets', ['tenant_id'], unique=False)
    op.create_index('ix_assets_tenant_status', 'assets', ['tenant_id', 'status'], unique=False)
    op.create_index('ix_assets_unpurged', 'assets', ['status'], unique=False, postgresql_where=sa.text("purged_at IS NULL AND status IN ('deleted', 'rejected')"))
    rls.enable('assets')
    op.add_column('outbox', sa.Column('parked_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_outbox_open_by_tenant', 'outbox', ['tenant_id', 'handler', 'created_at'], unique=False, postgresql_where=sa.text('completed_at IS NULL AND dead_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_open_by_tenant', table_name='outbox', postgresql_where=sa.text('completed_at IS NULL AND dead_at IS NULL'))
    op.drop_column('outbox', 'parked_at')
    op.drop_index('ix_assets_unpurged', table_name='assets', postgresql_where=sa.text("purged_at IS NULL AND status IN ('deleted', 'rejected')"))
    op.drop_index('ix_assets_tenant_status', table_name='assets')
    op.drop_index(op.f('ix_assets_tenant_id'), table_name='assets')
    op.drop_table('assets')
