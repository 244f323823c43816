"""purchases: catalogue, purchases, the sandbox gateway's ledger, billing ledger

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The catalogue and the purchases (requests, their state, what they bought).
    op.create_table('products',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('plan', sa.String(length=40), nullable=True),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(kind = 'plan') = (plan IS NOT NULL)", name=op.f('ck_products_plan_of_plans_only')),
    sa.CheckConstraint("kind IN ('plan', 'addon')", name=op.f('ck_products_kind')),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_products_price_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('code', name=op.f('uq_products_code'))
    )
    op.create_table('purchases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('buyer_user_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('product_code', sa.String(length=60), nullable=False),
    sa.Column('product_name', sa.String(length=200), nullable=False),
    sa.Column('product_kind', sa.String(length=10), nullable=False),
    sa.Column('plan', sa.String(length=40), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('payment_token', sa.String(length=100), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('charge_id', sa.String(length=100), nullable=True),
    sa.Column('refund_id', sa.String(length=100), nullable=True),
    sa.Column('refund_reason', sa.Text(), nullable=True),
    sa.Column('refund_requested_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refund_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_minor >= 0', name=op.f('ck_purchases_amount_not_negative')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_purchases_product_id_products')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_purchases_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchases')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name='uq_purchases_tenant_idempotency_key')
    )
    op.create_index(op.f('ix_purchases_product_id'), 'purchases', ['product_id'], unique=False)
    op.create_index(op.f('ix_purchases_tenant_id'), 'purchases', ['tenant_id'], unique=False)

    # The sandbox payment gateway's own ledger: an outside processor's tables, written on its own connections.
    op.create_table('sandbox_payment_methods',
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('behaviour', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_sandbox_payment_methods'))
    )
    op.create_index(op.f('ix_sandbox_payment_methods_fingerprint'), 'sandbox_payment_methods', ['fingerprint'], unique=False)
    op.create_table('sandbox_charges',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decline_code', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['token'], ['sandbox_payment_methods.token'], name=op.f('fk_sandbox_charges_token_sandbox_payment_methods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_charges')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_sandbox_charges_idempotency_key'))
    )
    op.create_table('sandbox_refunds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('charge_id', sa.String(length=40), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['charge_id'], ['sandbox_charges.id'], name=op.f('fk_sandbox_refunds_charge_id_sandbox_charges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_refunds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_sandbox_refunds_idempotency_key'))
    )
    op.create_index(op.f('ix_sandbox_refunds_charge_id'), 'sandbox_refunds', ['charge_id'], unique=False)
    op.create_table('sandbox_attempts',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_sandbox_attempts'))
    )

    # Billing: one ledger entry per purchase event.
    op.create_table('billing_ledger_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('purchase_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('product_code', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(kind = 'charge') = (amount_minor >= 0)", name=op.f('ck_billing_ledger_entries_sign_follows_kind')),
    sa.CheckConstraint("kind IN ('charge', 'refund')", name=op.f('ck_billing_ledger_entries_kind')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_billing_ledger_entries_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_ledger_entries')),
    sa.UniqueConstraint('purchase_id', 'kind', name='uq_billing_ledger_entries_purchase_kind')
    )
    op.create_index(op.f('ix_billing_ledger_entries_tenant_id'), 'billing_ledger_entries', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_billing_ledger_entries_tenant_id'), table_name='billing_ledger_entries')
    op.drop_table('billing_ledger_entries')
    op.drop_table('sandbox_attempts')
    op.drop_index(op.f('ix_sandbox_refunds_charge_id'), table_name='sandbox_refunds')
    op.drop_table('sandbox_refunds')
    op.drop_table('sandbox_charges')
    op.drop_index(op.f('ix_sandbox_payment_methods_fingerprint'), table_name='sandbox_payment_methods')
    op.drop_table('sandbox_payment_methods')
    op.drop_index(op.f('ix_purchases_tenant_id'), table_name='purchases')
    op.drop_index(op.f('ix_purchases_product_id'), table_name='purchases')
    op.drop_table('purchases')
    op.drop_table('products')
