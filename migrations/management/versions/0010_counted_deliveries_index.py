"""the hourly email rate counts through an index of the counted rows only

The count of a recipient's deliveries in the last hour walked every row of that hour,
throttled ones included, so each email of a busy recipient cost more than the one before.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

COUNTED = "state IN ('queued', 'sending', 'retry', 'sent', 'unconfirmed')"


def upgrade() -> None:
    op.create_index('ix_email_deliveries_counted', 'email_deliveries', ['recipient', 'created_at'],
                    unique=False, postgresql_where=sa.text(COUNTED))
    op.drop_index('ix_email_deliveries_recipient_created', table_name='email_deliveries')


def downgrade() -> None:
    op.create_index('ix_email_deliveries_recipient_created', 'email_deliveries', ['recipient', 'created_at'],
                    unique=False)
    op.drop_index('ix_email_deliveries_counted', table_name='email_deliveries',
                  postgresql_where=sa.text(COUNTED))
