"""notifications and translations: email deliveries (the idempotency record), undeliverable addresses,
preferences, digest choice, tenant branding; translation overrides and user locales; trial reminders

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('email_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('provider_id', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('sending', 'retry', 'sent', 'failed', 'throttled', 'suppressed', 'unconfirmed')", name=op.f('ck_email_deliveries_state')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_deliveries')),
    sa.UniqueConstraint('event_id', 'recipient', name=op.f('uq_email_deliveries_event_id'))
    )
    op.create_index('ix_email_deliveries_provider_id', 'email_deliveries', ['provider_id'], unique=False, postgresql_where=sa.text('provider_id IS NOT NULL'))
    op.create_index('ix_email_deliveries_recipient_created', 'email_deliveries', ['recipient', 'created_at'], unique=False)
    op.create_index(op.f('ix_email_deliveries_tenant_id'), 'email_deliveries', ['tenant_id'], unique=False)
    op.create_index('ix_email_deliveries_user_category', 'email_deliveries', ['user_id', 'category', 'created_at'], unique=False)
    op.create_table('undeliverable_addresses',
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_undeliverable_addresses'))
    )
    op.create_table('notification_preferences',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.Column('in_app', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_preferences_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'category', name=op.f('pk_notification_preferences'))
    )
    op.create_table('notification_settings',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('digest', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_settings_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_settings'))
    )
    op.create_table('user_locales',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_locales_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_locales'))
    )
    op.create_table('tenant_branding',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('sender_address', sa.String(length=320), nullable=True),
    sa.Column('logo_url', sa.String(length=500), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_branding_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenant_branding'))
    )
    op.create_table('translation_overrides',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_translation_overrides_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_translation_overrides')),
    sa.UniqueConstraint('tenant_id', 'locale', 'key', name=op.f('uq_translation_overrides_tenant_id'))
    )
    op.create_index(op.f('ix_translation_overrides_tenant_id'), 'translation_overrides', ['tenant_id'], unique=False)
    op.create_table('trial_reminders',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_trial_reminders_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_trial_reminders'))
    )


def downgrade() -> None:
    op.drop_table('trial_reminders')
    op.drop_index(op.f('ix_translation_overrides_tenant_id'), table_name='translation_overrides')
    op.drop_table('translation_overrides')
    op.drop_table('tenant_branding')
    op.drop_table('user_locales')
    op.drop_table('notification_settings')
    op.drop_table('notification_preferences')
    op.drop_table('undeliverable_addresses')
    op.drop_index('ix_email_deliveries_user_category', table_name='email_deliveries')
    op.drop_index(op.f('ix_email_deliveries_tenant_id'), table_name='email_deliveries')
    op.drop_index('ix_email_deliveries_recipient_created', table_name='email_deliveries')
    op.drop_index('ix_email_deliveries_provider_id', table_name='email_deliveries', postgresql_where=sa.text('provider_id IS NOT NULL'))
    op.drop_table('email_deliveries')
