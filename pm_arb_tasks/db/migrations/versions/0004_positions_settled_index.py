"""positions index: each review's "realized today" reads only the day's settlements

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:30:00
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.create_index('ix_positions_mode_settled_at', ['mode', 'settled_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('positions', schema=None) as batch_op:
        batch_op.drop_index('ix_positions_mode_settled_at')
