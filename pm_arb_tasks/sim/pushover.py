"""Pushover `POST /1/messages.json` with the real reply shapes.

Accepts form or JSON bodies like the real API. Success: `{"status": 1, "request": "<uuid>"}`
(plus `"receipt"` for emergency priority 2). Invalid input: HTTP 400 with
`{"<field>": "invalid", "errors": [...], "status": 0, "request": ...}`. Every accepted message is
recorded in the scenario log as kind "alert", without the token and user key (the log is
served over HTTP). Faults: service "pushover" (e.g. 429 or 500 N times).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, request

from pm_arb_tasks.sim.common import guard, reply, scenario
from pm_arb_tasks.sim.scenario import digest

pushover = Blueprint("sim_pushover", __name__)
guard(pushover, "pushover")

MAX_MESSAGE, MAX_TITLE = 1024, 250
MIN_RETRY, MAX_EXPIRE = 30, 10800


def _request_id(*parts: object) -> str:
    return str(uuid.UUID(bytes=digest(scenario().seed, "pushover", *parts)[:16]))


def _invalid(field: str, message: str, request_id: str) -> Response:
    return reply({field: "invalid", "errors": [message], "status": 0, "request": request_id}, 400)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@pushover.post("/1/messages.json")
def messages() -> Response:
    body: dict[str, Any] = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    body = body if isinstance(body, dict) else {}
    sim = scenario()
    request_id = _request_id(len(sim.log("alert")), sim.now().timestamp())
    if not str(body.get("token") or "").strip():
        return _invalid("token", "application token is invalid", request_id)
    if not str(body.get("user") or "").strip():
        return _invalid("user", "user identifier is not a valid user, group, or subscribed user key", request_id)
    message, title = str(body.get("message") or ""), str(body.get("title") or "")
    if not message.strip():
        return _invalid("message", "message cannot be blank", request_id)
    if len(message) > MAX_MESSAGE or len(title) > MAX_TITLE:
        return _invalid("message", f"message is limited to {MAX_MESSAGE} characters, title to {MAX_TITLE}", request_id)
    priority = _int(body.get("priority", 0))
    if priority is None or not -2 <= priority <= 2:
        return _invalid("priority", "priority must be an integer between -2 and 2", request_id)
    retry, expire = _int(body.get("retry")), _int(body.get("expire"))
    if priority == 2 and (retry is None or retry < MIN_RETRY):
        return _invalid("retry", f"retry must be at least {MIN_RETRY} seconds for emergency priority", request_id)
    if priority == 2 and (expire is None or not 0 < expire <= MAX_EXPIRE):
        return _invalid("expire", f"expire must be between 1 and {MAX_EXPIRE} seconds", request_id)
    recorded = {k: body[k] for k in ("sound", "url", "url_title", "html", "device", "ttl") if k in body}
    sim.record(
        "alert",
        {"title": title, "message": message, "priority": priority, "retry": retry, "expire": expire,
         "request": request_id, **recorded},
    )  # fmt: skip
    answer: dict[str, Any] = {"status": 1, "request": request_id}
    if priority == 2:
        answer["receipt"] = _request_id("receipt", request_id).replace("-", "")[:30]
    return reply(answer)
