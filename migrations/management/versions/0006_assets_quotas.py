"""assets quotas: each tenant's storage quota and refused kinds; outbox deliveries parked by admission control

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
    op.create_table('asset_policies',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('quota_bytes', sa.BigInteger(), nullable=True),
    sa.Column('blocked_kinds', sa.ARRAY(sa.Text()), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_asset_policies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_asset_policies'))
    )
    op.add_column('outbox', sa.Column('parked_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_outbox_open_by_tenant', 'outbox', ['tenant_id', 'handler', 'created_at'], unique=False, postgresql_where=sa.text('completed_at IS NULL AND dead_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_outbox_open_by_tenant', table_name='outbox', postgresql_where=sa.text('completed_at IS NULL AND dead_at IS NULL'))
    op.drop_column('outbox', 'parked_at')
    op.drop_table('asset_policies')
