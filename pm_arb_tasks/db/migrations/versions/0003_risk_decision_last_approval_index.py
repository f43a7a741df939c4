"""risk decision index: each review's read of the market's last approval stays an index lookup

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 19:00:00
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.create_index(
            'ix_risk_decisions_last_approval', ['mode', 'market_id', 'approved', 'decided_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_risk_decisions_last_approval')
