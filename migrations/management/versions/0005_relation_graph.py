"""relation graph: typed edges between GUIDs, one table for every tenant (no business data)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('relation_edges',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('relation', sa.String(length=40), nullable=False),
    sa.Column('from_id', sa.Uuid(), nullable=False),
    sa.Column('to_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('from_id <> to_id', name=op.f('ck_relation_edges_not_to_itself')),
    sa.PrimaryKeyConstraint('tenant_id', 'relation', 'from_id', 'to_id', name=op.f('pk_relation_edges'))
    )
    op.create_index('ix_relation_edges_source', 'relation_edges', ['from_id'], unique=False)
    op.create_index('ix_relation_edges_target', 'relation_edges', ['to_id'], unique=False)
    op.create_index('uq_relation_edges_one_manager', 'relation_edges', ['tenant_id', 'from_id'], unique=True, postgresql_where=sa.text("relation = 'reports_to'"))


def downgrade() -> None:
    op.drop_index('uq_relation_edges_one_manager', table_name='relation_edges', postgresql_where=sa.text("relation = 'reports_to'"))
    op.drop_index('ix_relation_edges_target', table_name='relation_edges')
    op.drop_index('ix_relation_edges_source', table_name='relation_edges')
    op.drop_table('relation_edges')
