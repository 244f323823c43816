"""publications: publications, their ordered sections, and a delivery (read receipt) per recipient

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from migrations.tenant import rls

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('publications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('audience_kind', sa.String(length=20), nullable=False),
    sa.Column('audience_unit_id', sa.Uuid(), nullable=True),
    sa.Column('audience_sub_units', sa.Boolean(), nullable=False),
    sa.Column('audience_people', postgresql.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('attachments', postgresql.ARRAY(sa.Uuid()), nullable=False),
    sa.Column('publish_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('author_id', sa.Uuid(), nullable=False),
    sa.Column('author_name', sa.String(length=200), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('notified', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("audience_kind IN ('everyone', 'org_unit', 'people')", name=op.f('ck_publications_audience_kind')),
    sa.CheckConstraint("status <> 'scheduled' OR publish_at IS NOT NULL", name=op.f('ck_publications_scheduled_has_time')),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'publishing', 'published', 'failed')", name=op.f('ck_publications_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publications'))
    )
    op.create_index('ix_publications_due', 'publications', ['publish_at'], unique=False, postgresql_where=sa.text("status = 'scheduled'"))
    op.create_index('ix_publications_tenant_created', 'publications', ['tenant_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_publications_tenant_id'), 'publications', ['tenant_id'], unique=False)
    rls.enable('publications')
    op.create_table('publication_deliveries',
    sa.Column('publication_id', sa.Uuid(), nullable=False),
    sa.Column('employee_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_publication_deliveries_publication_id_publications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('publication_id', 'employee_id', name=op.f('pk_publication_deliveries'))
    )
    op.create_index('ix_publication_deliveries_reader', 'publication_deliveries', ['tenant_id', 'employee_id'], unique=False)
    op.create_index(op.f('ix_publication_deliveries_tenant_id'), 'publication_deliveries', ['tenant_id'], unique=False)
    op.create_index('ix_publication_deliveries_user', 'publication_deliveries', ['user_id'], unique=False)
    rls.enable('publication_deliveries')
    op.create_table('publication_sections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('publication_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('heading', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], name=op.f('fk_publication_sections_publication_id_publications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publication_sections')),
    sa.UniqueConstraint('publication_id', 'position', deferrable=True, initially='DEFERRED', name=op.f('uq_publication_sections_publication_id'))
    )
    op.create_index(op.f('ix_publication_sections_publication_id'), 'publication_sections', ['publication_id'], unique=False)
    op.create_index(op.f('ix_publication_sections_tenant_id'), 'publication_sections', ['tenant_id'], unique=False)
    rls.enable('publication_sections')


def downgrade() -> None:
    op.drop_index(op.f('ix_publication_sections_tenant_id'), table_name='publication_sections')
    op.drop_index(op.f('ix_publication_sections_publication_id'), table_name='publication_sections')
    op.drop_table('publication_sections')
    op.drop_index('ix_publication_deliveries_user', table_name='publication_deliveries')
    op.drop_index(op.f('ix_publication_deliveries_tenant_id'), table_name='publication_deliveries')
    op.drop_index('ix_publication_deliveries_reader', table_name='publication_deliveries')
    op.drop_table('publication_deliveries')
    op.drop_index(op.f('ix_publications_tenant_id'), table_name='publications')
    op.drop_index('ix_publications_tenant_created', table_name='publications')
    op.drop_index('ix_publications_due', table_name='publications', postgresql_where=sa.text("status = 'scheduled'"))
    op.drop_table('publications')
