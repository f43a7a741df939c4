"""equity snapshot indexes: the guardian's latest, opening and peak equity stay index lookups

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('equity_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_equity_snapshots_mode_taken_at', ['mode', 'taken_at'], unique=False)
        batch_op.create_index('ix_equity_snapshots_mode_equity', ['mode', 'equity'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('equity_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_equity_snapshots_mode_equity')
        batch_op.drop_index('ix_equity_snapshots_mode_taken_at')
