"""Helpers shared by the simulator's blueprints: the scenario of the running app, JSON replies,
and fault injection per upstream service (see `Fault`)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app

from pm_arb_tasks.sim.scenario import Scenario

EXTENSION = "pm_arb_sim"


def scenario() -> Scenario:
    return current_app.extensions[EXTENSION]


def reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON in the key order given (the real APIs do not sort keys)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def error(status: int, message: str, key: str = "error") -> Response:
    return reply({key: message}, status)


def guard(blueprint: Blueprint, service: str) -> None:
    """Let `/sim/fault` make every endpoint of `blueprint` misbehave as `service`.

    Status, raw and HTML faults answer before the view runs; a truncated fault cuts the view's
    real reply in half. Value and garbage faults are applied by the views themselves, which know
    where the prices are.
    """

    @blueprint.before_request
    def _inject() -> Response | None:
        fault = scenario().consume_fault(service, ("status", "raw", "html"))
        if fault is None:
            return None
        if fault.mode == "raw":
            return Response(fault.body, status=200, mimetype="application/json")
        if fault.mode == "html":
            return Response("<html><body>Service Unavailable</body></html>", status=200, mimetype="text/html")
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
        return reply({"error": f"simulated {fault.status}"}, fault.status, headers)

    @blueprint.after_request
    def _truncate(response: Response) -> Response:
        if response.status_code == 200 and scenario().consume_fault(service, ("truncated",)):
            data = response.get_data()
            response.set_data(data[: max(len(data) // 2, 1)])
        return response
