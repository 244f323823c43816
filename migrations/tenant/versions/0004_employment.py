"""employment: job types, org units (a tree), employees, import jobs and their problems

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

from migrations.tenant import rls

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('phase', sa.String(length=20), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('managers_done', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('edges', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("phase IN ('employees', 'managers', 'done')", name=op.f('ck_import_jobs_phase')),
    sa.CheckConstraint("status IN ('pending', 'running', 'completed', 'failed')", name=op.f('ck_import_jobs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    op.create_index(op.f('ix_import_jobs_tenant_id'), 'import_jobs', ['tenant_id'], unique=False)
    rls.enable('import_jobs')
    op.create_table('job_types',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_types')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_job_types_tenant_id'))
    )
    op.create_index(op.f('ix_job_types_tenant_id'), 'job_types', ['tenant_id'], unique=False)
    rls.enable('job_types')
    op.create_table('org_units',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['org_units.id'], name=op.f('fk_org_units_parent_id_org_units'), ondelete='SET NULL', initially='DEFERRED', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_org_units'))
    )
    op.create_index(op.f('ix_org_units_parent_id'), 'org_units', ['parent_id'], unique=False)
    op.create_index(op.f('ix_org_units_tenant_id'), 'org_units', ['tenant_id'], unique=False)
    rls.enable('org_units')
    op.create_table('employees',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('work_email', sa.String(length=320), nullable=False),
    sa.Column('job_type_id', sa.Uuid(), nullable=True),
    sa.Column('org_unit_id', sa.Uuid(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("status IN ('active', 'on_leave', 'left')", name=op.f('ck_employees_status')),
    sa.CheckConstraint('end_date IS NULL OR start_date IS NULL OR end_date >= start_date', name=op.f('ck_employees_ends_after_start')),
    sa.ForeignKeyConstraint(['job_type_id'], ['job_types.id'], name=op.f('fk_employees_job_type_id_job_types')),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_units.id'], name=op.f('fk_employees_org_unit_id_org_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employees')),
    sa.UniqueConstraint('tenant_id', 'work_email', name=op.f('uq_employees_tenant_id'))
    )
    op.create_index(op.f('ix_employees_job_type_id'), 'employees', ['job_type_id'], unique=False)
    op.create_index(op.f('ix_employees_org_unit_id'), 'employees', ['org_unit_id'], unique=False)
    op.create_index(op.f('ix_employees_tenant_id'), 'employees', ['tenant_id'], unique=False)
    rls.enable('employees')
    op.create_index('ix_employees_tenant_name', 'employees', ['tenant_id', 'name'], unique=False)
    op.create_table('import_problems',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_problems_job_id_import_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'line', 'field', name=op.f('pk_import_problems'))
    )
    op.create_index(op.f('ix_import_problems_tenant_id'), 'import_problems', ['tenant_id'], unique=False)
    rls.enable('import_problems')


def downgrade() -> None:
    op.drop_index(op.f('ix_import_problems_tenant_id'), table_name='import_problems')
    op.drop_table('import_problems')
    op.drop_index('ix_employees_tenant_name', table_name='employees')
    op.drop_index(op.f('ix_employees_tenant_id'), table_name='employees')
    op.drop_index(op.f('ix_employees_org_unit_id'), table_name='employees')
    op.drop_index(op.f('ix_employees_job_type_id'), table_name='employees')
    op.drop_table('employees')
    op.drop_index(op.f('ix_org_units_tenant_id'), table_name='org_units')
    op.drop_index(op.f('ix_org_units_parent_id'), table_name='org_units')
    op.drop_table('org_units')
    op.drop_index(op.f('ix_job_types_tenant_id'), table_name='job_types')
    op.drop_table('job_types')
    op.drop_index(op.f('ix_import_jobs_tenant_id'), table_name='import_jobs')
    op.drop_table('import_jobs')
