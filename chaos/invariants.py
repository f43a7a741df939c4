"""Every invariant of DESIGN.md §2 and the tests that name it (RELIABILITY.md prints this map).

`missing()` checks that each referenced test function exists, so the map cannot silently rot when a
test is renamed (tests/integration/test_chaos_quick.py runs it).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

INVARIANTS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("At most one order per trade request", (
        "tests/integration/test_duplicate_delivery.py::test_one_order_and_one_row_however_often_the_message_comes",
        "tests/integration/test_executor_safety.py::test_second_delivery_reports_the_first_outcome_without_posting",
        "tests/integration/test_executor_safety.py::test_racing_deliveries_post_once",
        "tests/integration/test_executor_safety.py::test_interrupted_delivery_is_recovered_by_its_stored_hash",
        "tests/integration/test_live_venue_sim.py::test_redelivery_after_the_post_asks_the_venue_and_posts_nothing",
        "tests/integration/test_chaos_quick.py::test_sigkill_of_the_executor_mid_order",
        "tests/integration/test_executor_crash.py::test_kill_minus_nine_leaves_one_order_and_one_row",
        "tests/integration/test_executor_crash.py::test_the_same_message_twice_places_one_order",
        "tests/integration/test_scripted_jump.py::test_live_a_jump_orders_once_per_request_reconciles_settles_and_reports",
    )),
    2: ("No stale order", (
        "tests/integration/test_staleness.py::test_a_stale_oracle_tick_places_nothing",
        "tests/integration/test_staleness.py::test_a_late_scan_places_nothing",
        "tests/integration/test_staleness.py::test_a_stale_book_places_nothing",
        "tests/integration/test_staleness.py::test_a_book_gone_stale_before_execution_places_nothing",
        "tests/integration/test_executor_safety.py::test_deadline_is_checked_just_before_the_post",
        "tests/integration/test_kill_switch.py::test_paused_executor_places_nothing_and_resume_fires_no_stale_order",
        "tests/integration/test_chaos_quick.py::test_load_discards_expired_requests",
        "tests/integration/test_scanning.py::test_the_tick_sent_with_the_scan_is_priced_before_it_is_stored",
    )),
    3: ("The kill switch holds", (
        "tests/integration/test_kill_switch.py::test_paused_executor_places_nothing_and_resume_fires_no_stale_order",
        "tests/integration/test_kill_switch.py::test_stop_cancels_the_consumer_and_risk_refuses_new_requests",
        "tests/integration/test_kill_switch.py::test_executor_restarted_while_halted_stays_paused",
        "tests/integration/test_kill_switch.py::test_a_message_reaching_the_executor_meets_the_halt_flag",
        "tests/integration/test_executor_safety.py::test_halt_flag_is_checked_just_before_the_post",
        "tests/integration/test_kill_switch.py::test_pm_arb_stop_and_resume_commands",
        "tests/integration/test_executor_safety.py::test_a_halt_set_while_the_order_is_signed_stops_it",
        "tests/integration/test_executor_safety.py::test_a_venue_that_signs_nothing_reads_the_halt_with_the_claim",
    )),
    4: ("Risk limits are never exceeded", (
        "tests/integration/test_risk_race.py::test_200_racing_requests_never_exceed_a_limit_and_fill_it_exactly",
        "tests/integration/test_risk_guardian.py::test_reduced_then_rejected_at_the_position_limit_every_decision_recorded",
        "tests/integration/test_risk_guardian.py::test_settle_failed_releases_all_partial_keeps_cost_and_only_once",
        "tests/unit/test_risk_rules.py::test_approved_amount_never_breaks_a_limit",
        "tests/integration/test_equity_snapshots.py::test_giving_back_an_open_gain_past_the_drawdown_limit_halts",
        "tests/integration/test_equity_snapshots.py::test_an_open_loss_today_counts_against_the_daily_limit",
        "tests/integration/test_scripted_jump.py::test_paper_a_jump_trades_the_lagging_markets_and_explains_every_skip",
        "tests/integration/test_risk_guardian.py::test_threads_racing_on_one_market_never_pass_its_limit",
        "tests/integration/test_risk_guardian.py::test_a_review_that_fails_midway_leaves_no_transaction_open",
        "tests/integration/test_risk_guardian.py::test_the_read_is_prepared_once_per_connection_and_a_lost_one_heals",
        "tests/integration/test_risk_guardian.py::test_only_a_halting_review_waits_for_its_commit_to_be_flushed",
        "tests/integration/test_executor_safety.py::test_an_approval_not_on_record_is_refused_without_a_claim",
        "tests/integration/test_executor_safety.py::test_a_paper_approval_is_never_placed_by_a_live_executor",
    )),
    5: ("Nothing is lost", (
        "tests/integration/test_persist_outage.py::test_outcomes_sent_during_a_database_outage_land_once_it_returns",
        "tests/integration/test_pipeline_e2e.py::test_requests_on_the_scan_queue_end_as_one_row_and_one_alert_each",
        "tests/integration/test_chaos_quick.py::test_redis_restart",
        "tests/integration/test_chaos_quick.py::test_postgres_outage",
        "tests/integration/test_chaos_quick.py::test_sigkill_of_the_executor_mid_order",
        "tests/integration/test_executor_crash.py::test_kill_minus_nine_leaves_one_order_and_one_row",
        "tests/integration/test_broker_transport.py::test_closing_a_channel_whose_transport_is_gone_is_a_lost_connection",
        "tests/integration/test_pool_ping.py::test_a_connection_dropped_while_idle_is_replaced_at_checkout",
        "tests/integration/test_pool_ping.py::test_a_connection_dropped_between_quick_uses_fails_once_then_the_pool_recovers",
    )),
    6: ("Bad input never crashes a worker", (
        "tests/integration/test_malformed_payloads.py::test_a_bad_reply_is_survived_and_logged_once",
        "tests/unit/test_oracle_parsers.py::test_arbitrary_json_never_raises_anything_but_upstream_error",
        "tests/unit/test_book_parser.py::test_arbitrary_json_never_raises",
        "tests/unit/test_gamma_parser.py::test_unrecognised_or_broken_strike_rows_are_unclassified_never_guessed",
        "tests/integration/test_scanning.py::test_a_corrupt_book_or_market_never_stops_the_scan",
        "tests/integration/test_scanning.py::test_the_scan_task_dispatches_and_survives_a_bad_tick_time",
        "tests/unit/test_reply_parsers_never_raise.py::test_fills_from_any_trades_never_raise_and_never_go_negative",
        "tests/integration/test_upkeep_outage.py::test_upkeep_skips_the_run_in_one_line",
    )),
    7: ("Secrets stay secret", (
        "tests/unit/test_settings.py::test_secrets_are_masked_in_every_repr",
        "tests/unit/test_settings.py::test_malformed_key_is_rejected_without_echoing_it",
        "tests/integration/test_executor_safety.py::test_an_exception_after_posting_is_unknown_and_masks_secrets",
        "tests/integration/test_pushover_sim.py::test_keys_echoed_in_an_error_reply_are_masked",
        "tests/integration/test_flower_auth.py::test_password_is_not_on_the_command_line",
        "tests/integration/test_live_venue_sim.py::test_no_secret_in_logs_database_results_redis_or_venue_log",
        "tests/integration/test_worker_startup.py::test_a_live_executor_refuses_a_venue_it_cannot_reach",
        "tests/integration/test_secrets_end_to_end.py::test_no_secret_in_logs_redis_database_flower_or_what_the_venue_received",
        "tests/unit/test_derived_secrets_redacted.py::test_the_log_filter_masks_derived_credentials",
    )),
    8: ("Paper is the default", (
        "tests/unit/test_settings.py::test_defaults_are_paper_and_design_values",
        "tests/unit/test_settings.py::test_live_without_key_fails_fast_naming_the_variable",
        "tests/integration/test_live_confirmation.py::test_live_mode_declined_at_the_terminal_starts_nothing",
        "tests/integration/test_live_confirmation.py::test_paper_mode_never_asks",
    )),
}  # fmt: skip


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def missing() -> list[str]:
    """Referenced tests that do not exist (file or function)."""
    gone = []
    for _, tests in INVARIANTS.values():
        for ref in tests:
            file, _, name = ref.partition("::")
            path = REPO / file
            if not path.exists() or name not in _functions(path):
                gone.append(ref)
    return gone
