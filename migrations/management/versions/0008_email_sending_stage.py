"""the sending stage: email deliveries are queued with their sealed payload and sent in batches

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OLD_STATES = "'sending', 'retry', 'sent', 'failed', 'throttled', 'suppressed', 'unconfirmed'"
NEW_STATES = "'queued', " + OLD_STATES


def upgrade() -> None:
    op.add_column('email_deliveries', sa.Column('payload', sa.Text(), nullable=True))
    op.add_column('email_deliveries', sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('email_deliveries', sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f('ck_email_deliveries_state'), 'email_deliveries', type_='check')
    op.create_check_constraint(op.f('ck_email_deliveries_state'), 'email_deliveries', f"state IN ({NEW_STATES})")
    op.create_index('ix_email_deliveries_due', 'email_deliveries', ['due_at'], unique=False,
                    postgresql_where=sa.text("state IN ('queued', 'retry')"))


def downgrade() -> None:
    op.drop_index('ix_email_deliveries_due', table_name='email_deliveries',
                  postgresql_where=sa.text("state IN ('queued', 'retry')"))
    op.execute("UPDATE email_deliveries SET state = 'unconfirmed', error = 'queued when downgraded' "
               "WHERE state = 'queued'")
    op.drop_constraint(op.f('ck_email_deliveries_state'), 'email_deliveries', type_='check')
    op.create_check_constraint(op.f('ck_email_deliveries_state'), 'email_deliveries', f"state IN ({OLD_STATES})")
    op.drop_column('email_deliveries', 'claimed_until')
    op.drop_column('email_deliveries', 'due_at')
    op.drop_column('email_deliveries', 'payload')
