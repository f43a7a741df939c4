"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 03:24:44.201941
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.String(length=60), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=250), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=120), nullable=True),
    sa.Column('delivery', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_id')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_dedupe_key'), ['dedupe_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_kind'), ['kind'], unique=False)

    op.create_table('equity_snapshots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('equity', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('realized_pnl', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('unrealized_pnl', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('equity_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equity_snapshots_taken_at'), ['taken_at'], unique=False)

    op.create_table('live_trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('trade_id', sa.String(length=50), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('opportunity_id', sa.String(length=40), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('token_id', sa.String(length=100), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('outcome', sa.String(length=3), nullable=False),
    sa.Column('requested_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('max_price', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('expected_edge', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('expected_fee', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('filled_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('fill_price', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('fee', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('order_id', sa.String(length=100), nullable=True),
    sa.Column('order_hash', sa.String(length=80), nullable=True),
    sa.Column('venue_trade_ids', sa.JSON(), nullable=True),
    sa.Column('settlement', sa.String(length=12), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('strategy', sa.String(length=30), nullable=False),
    sa.Column(
        'entry_price', sa.Numeric(precision=20, scale=8), sa.Computed('fill_price', persisted=True), nullable=True
    ),
    sa.Column(
        'quantity', sa.Numeric(precision=20, scale=8), sa.Computed('filled_amount', persisted=True), nullable=True
    ),
    sa.Column(
        'slippage', sa.Numeric(precision=20, scale=8), sa.Computed('fill_price - max_price', persisted=True),
        nullable=True,
    ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_id')
    )
    with op.batch_alter_table('live_trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_trades_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_trades_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_trades_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_trades_status'), ['status'], unique=False)

    op.create_table('markets',
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('gamma_id', sa.String(length=40), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('symbol', sa.String(length=10), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('strike', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolves_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('yes_token_id', sa.String(length=100), nullable=False),
    sa.Column('no_token_id', sa.String(length=100), nullable=False),
    sa.Column('outcome_yes', sa.String(length=40), nullable=False),
    sa.Column('outcome_no', sa.String(length=40), nullable=False),
    sa.Column('tick_size', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('min_order_size', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('neg_risk', sa.Boolean(), nullable=False),
    sa.Column('fees_enabled', sa.Boolean(), nullable=False),
    sa.Column('fee_rate', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('fee_exponent', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('accepting_orders', sa.Boolean(), nullable=False),
    sa.Column('winning_outcome', sa.String(length=3), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('market_id')
    )
    with op.batch_alter_table('markets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_markets_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_markets_symbol'), ['symbol'], unique=False)

    op.create_table('opportunities',
    sa.Column('opportunity_id', sa.String(length=40), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('symbol', sa.String(length=10), nullable=True),
    sa.Column('outcome', sa.String(length=3), nullable=True),
    sa.Column('fair_value', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('ask', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('fee', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('net_edge', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('emitted', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=True),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('opportunity_id')
    )
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunities_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunities_observed_at'), ['observed_at'], unique=False)

    op.create_table('order_claims',
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('trade_id', sa.String(length=50), nullable=False),
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('order_hash', sa.String(length=80), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id'),
    sa.UniqueConstraint('trade_id')
    )
    op.create_table('paper_trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('trade_id', sa.String(length=50), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('opportunity_id', sa.String(length=40), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('token_id', sa.String(length=100), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('outcome', sa.String(length=3), nullable=False),
    sa.Column('requested_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('max_price', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('expected_edge', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('expected_fee', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('filled_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('fill_price', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('fee', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('order_id', sa.String(length=100), nullable=True),
    sa.Column('order_hash', sa.String(length=80), nullable=True),
    sa.Column('venue_trade_ids', sa.JSON(), nullable=True),
    sa.Column('settlement', sa.String(length=12), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('strategy', sa.String(length=30), nullable=False),
    sa.Column(
        'entry_price', sa.Numeric(precision=20, scale=8), sa.Computed('fill_price', persisted=True), nullable=True
    ),
    sa.Column(
        'quantity', sa.Numeric(precision=20, scale=8), sa.Computed('filled_amount', persisted=True), nullable=True
    ),
    sa.Column(
        'slippage', sa.Numeric(precision=20, scale=8), sa.Computed('fill_price - max_price', persisted=True),
        nullable=True,
    ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_id')
    )
    with op.batch_alter_table('paper_trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_paper_trades_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_paper_trades_market_id'), ['market_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_paper_trades_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_paper_trades_status'), ['status'], unique=False)

    op.create_table('positions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('outcome', sa.String(length=3), nullable=False),
    sa.Column('token_id', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('cost', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('fees', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('realized_pnl', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mode', 'market_id', 'outcome')
    )
    op.create_table('risk_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('approved', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('requested_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('approved_amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('outcome', sa.String(length=3), nullable=True),
    sa.Column('settled_status', sa.String(length=10), nullable=True),
    sa.Column('kept_amount', sa.Numeric(precision=20, scale=8), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_decisions_market_id'), ['market_id'], unique=False)

    op.create_table('risk_exposure',
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('market_id', sa.String(length=80), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=8), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('mode', 'market_id')
    )
    op.create_table('system_state',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('system_state')
    op.drop_table('risk_exposure')
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_decisions_market_id'))

    op.drop_table('risk_decisions')
    op.drop_table('positions')
    with op.batch_alter_table('paper_trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paper_trades_status'))
        batch_op.drop_index(batch_op.f('ix_paper_trades_request_id'))
        batch_op.drop_index(batch_op.f('ix_paper_trades_market_id'))
        batch_op.drop_index(batch_op.f('ix_paper_trades_created_at'))

    op.drop_table('paper_trades')
    op.drop_table('order_claims')
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunities_observed_at'))
        batch_op.drop_index(batch_op.f('ix_opportunities_market_id'))

    op.drop_table('opportunities')
    with op.batch_alter_table('markets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_markets_symbol'))
        batch_op.drop_index(batch_op.f('ix_markets_kind'))

    op.drop_table('markets')
    with op.batch_alter_table('live_trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_trades_status'))
        batch_op.drop_index(batch_op.f('ix_live_trades_request_id'))
        batch_op.drop_index(batch_op.f('ix_live_trades_market_id'))
        batch_op.drop_index(batch_op.f('ix_live_trades_created_at'))

    op.drop_table('live_trades')
    with op.batch_alter_table('equity_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equity_snapshots_taken_at'))

    op.drop_table('equity_snapshots')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_kind'))
        batch_op.drop_index(batch_op.f('ix_alerts_dedupe_key'))
        batch_op.drop_index(batch_op.f('ix_alerts_created_at'))

    op.drop_table('alerts')
