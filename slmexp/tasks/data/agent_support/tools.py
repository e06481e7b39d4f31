"""The tools of the `agent-support` task: a customer-support back office (customers, orders, refunds, tickets and a
currency calculator) as plain Python functions over one episode's data.

Why plain functions over a dict: an agent episode must be judged deterministically and re-judged later
(`slmexp rescore`) by replaying the model's calls, so every tool is a pure function of (state, arguments) that
may change `state` in place and returns a JSON-able result. No network, no shell, no clock, no randomness.

The contract a tools module keeps (docs/tasks.md, "Agent tasks"): `SCHEMAS` (OpenAI-style function schemas, one
per tool), a function of each schema's name taking `(state, **arguments)`, and optionally `new_state(row)` (the
episode's starting data; default: a deep copy of the row's `state`). A tool raises `ValueError` / `KeyError` for a
request it refuses (unknown order, refund of a cancelled order): the agent loop feeds that back as the tool's error.
"""

from __future__ import annotations

from typing import Any

# Fixed exchange rates to EUR (1 unit of the currency = this many EUR); shipped with the task, never fetched.
RATES_TO_EUR = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04, "SEK": 0.088, "JPY": 0.0062}


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required,
                           "additionalProperties": False}}


_STR = {"type": "string"}
SCHEMAS: list[dict[str, Any]] = [
    _fn("find_customer", "Look up a customer by email address.", {"email": _STR}, ["email"]),
    _fn("list_orders", "List a customer's orders.", {"customer_id": _STR}, ["customer_id"]),
    _fn("get_order", "Details of one order.", {"order_id": _STR}, ["order_id"]),
    _fn("cancel_order", "Cancel an order that has not shipped yet.", {"order_id": _STR}, ["order_id"]),
    _fn("refund_order", "Refund a delivered order in full.",
        {"order_id": _STR, "reason": {"type": "string", "enum": ["damaged", "late", "wrong_item", "other"]}},
        ["order_id", "reason"]),
    _fn("create_ticket", "Open a support ticket for a customer.",
        {"customer_id": _STR, "subject": _STR, "priority": {"type": "string", "enum": ["low", "normal", "high"]}},
        ["customer_id", "subject", "priority"]),
    _fn("convert_currency", "Convert an amount between currencies at today's fixed rates.",
        {"amount": {"type": "number"}, "from_currency": _STR, "to_currency": _STR},
        ["amount", "from_currency", "to_currency"]),
]


def _order(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    order = state["orders"].get(order_id)
    if order is None:
        raise KeyError(f"no order {order_id}")
    return order


def find_customer(state: dict[str, Any], email: str) -> dict[str, Any]:
    for cid, c in state["customers"].items():
        if c["email"].lower() == email.strip().lower():
            return {"customer_id": cid, "name": c["name"], "tier": c["tier"]}
    raise KeyError(f"no customer with email {email}")


def list_orders(state: dict[str, Any], customer_id: str) -> list[dict[str, Any]]:
    if customer_id not in state["customers"]:
        raise KeyError(f"no customer {customer_id}")
    return [{"order_id": oid, "status": o["status"], "total": o["total"], "currency": o["currency"]}
            for oid, o in state["orders"].items() if o["customer_id"] == customer_id]


def get_order(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, **_order(state, order_id)}


def cancel_order(state: dict[str, Any], order_id: str) -> dict[str, Any]:
    order = _order(state, order_id)
    if order["status"] != "processing":
        raise ValueError(f"order {order_id} is {order['status']}: only a processing order can be cancelled")
    order["status"] = "cancelled"
    return {"order_id": order_id, "status": "cancelled"}


def refund_order(state: dict[str, Any], order_id: str, reason: str) -> dict[str, Any]:
    order = _order(state, order_id)
    if order["status"] != "delivered":
        raise ValueError(f"order {order_id} is {order['status']}: only a delivered order can be refunded")
    order["status"] = "refunded"
    refund_id = f"R-{len(state['refunds']) + 1:03d}"
    state["refunds"].append({"refund_id": refund_id, "order_id": order_id, "amount": order["total"],
                             "currency": order["currency"], "reason": reason})
    return {"refund_id": refund_id, "amount": order["total"], "currency": order["currency"]}


def create_ticket(state: dict[str, Any], customer_id: str, subject: str, priority: str) -> dict[str, Any]:
    if customer_id not in state["customers"]:
        raise KeyError(f"no customer {customer_id}")
    ticket_id = f"T-{len(state['tickets']) + 101}"
    state["tickets"].append({"ticket_id": ticket_id, "customer_id": customer_id, "priority": priority})
    return {"ticket_id": ticket_id, "status": "open"}


def convert_currency(state: dict[str, Any], amount: float, from_currency: str, to_currency: str) -> dict[str, Any]:
    src, dst = from_currency.upper(), to_currency.upper()
    for code in (src, dst):
        if code not in RATES_TO_EUR:
            raise ValueError(f"unknown currency {code}; known: {', '.join(RATES_TO_EUR)}")
    return {"amount": round(float(amount) * RATES_TO_EUR[src] / RATES_TO_EUR[dst], 2), "currency": dst}
