"""Deterministic generator for the shipped ``agent-support`` data set: customer-support episodes that need 1-4 tool
calls over a small back office (customers, orders, refunds, tickets, a currency calculator).

Each row is one episode: the customer's goal (``text``), the tools offered (``tools``: names from
``slmexp/tasks/data/agent_support/tools.py``), the episode's own starting data (``state``: 3-4 customers and their
orders) and the gold (``target``): the gold trajectory of calls, the facts the final answer must state and a gold
reply. The gold calls are run through the real tools here, so every gold trajectory succeeds on its own data and
its facts (refund amounts, converted prices, ticket ids) are what the tools return. A goal is unambiguous on its
data: "my order that is still processing" is written only for a customer with exactly one such order.

Only ``random.Random(seed)`` is used, so the output is identical on every platform. Regenerate with::

    python -m datagen.agent_support [--out DIR] [--seed 1234]
"""

from __future__ import annotations

import copy
import importlib.util
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagen import run_cli

DATASET_NAME = "agent-support"
DEFAULT_SEED = 1234
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "slmexp" / "tasks" / "data" / "agent_support"
SPLIT_SIZES: dict[str, int] = {"train": 320, "validation": 40, "test": 60}

_FIRST = ["Alice", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia", "Kofi", "Lena",
          "Marco", "Nina", "Omar", "Priya", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen", "Yusuf", "Zoe"]
_LAST = ["Berg", "Costa", "Diaz", "Eriksen", "Fischer", "Garcia", "Holm", "Ito", "Jensen", "Khan", "Lund", "Moreau",
         "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Weber"]
_DOMAINS = ["example.com", "mail.test", "post.example", "inbox.test"]
_ITEMS = ["desk lamp", "rain jacket", "coffee grinder", "yoga mat", "phone case", "backpack", "kettle", "headphones",
          "water bottle", "board game", "wool scarf", "bike light"]
_CURRENCIES = ["EUR", "USD", "GBP", "CHF"]
_REASONS = {"damaged": ["it arrived damaged", "it was broken when it came"], "late": ["it came far too late",
            "it arrived two weeks late"], "wrong_item": ["I got the wrong item", "you sent me something else"]}
_SUBJECTS = [("I cannot log in to my account", "high"), ("my invoice shows the wrong address", "normal"),
             ("please add a gift note to future orders", "low"), ("the app crashes at checkout", "high"),
             ("I want to change my newsletter settings", "low"), ("a coupon code did not apply", "normal")]
_HELLO = ["", "Hi! ", "Hello, ", "Good morning. "]


def _tools() -> Any:
    path = DEFAULT_OUT_DIR / "tools.py"
    spec = importlib.util.spec_from_file_location("agent_support_tools", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _state(rng: random.Random, counter: list[int]) -> dict[str, Any]:
    """3-4 customers with 1-3 orders each; ids unique within the data set (counter)."""
    customers, orders = {}, {}
    for _ in range(rng.randint(3, 4)):
        counter[0] += 1
        cid = f"C-{counter[0]:04d}"
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        customers[cid] = {"name": f"{first} {last}", "tier": rng.choice(["standard", "gold"]),
                          "email": f"{first.lower()}.{last.lower()}{counter[0] % 97}@{rng.choice(_DOMAINS)}"}
        for _ in range(rng.randint(1, 3)):
            counter[1] += 1
            orders[f"O-{counter[1]:05d}"] = {
                "customer_id": cid, "item": rng.choice(_ITEMS),
                "status": rng.choice(["processing", "shipped", "delivered", "delivered", "cancelled"]),
                "total": round(rng.uniform(9, 240), 2), "currency": rng.choice(_CURRENCIES)}
    return {"customers": customers, "orders": orders, "refunds": [], "tickets": []}


def _pick_order(rng: random.Random, state: dict[str, Any], status: str, unique: bool = False) -> str | None:
    """An order of `status`; with `unique`, only one whose customer has no other order of that status."""
    ids = [o for o, v in state["orders"].items() if v["status"] == status]
    if unique:
        ids = [o for o in ids if sum(v["status"] == status and v["customer_id"] == state["orders"][o]["customer_id"]
                                     for v in state["orders"].values()) == 1]
    return rng.choice(ids) if ids else None


def _money(x: float) -> str:
    return f"{x:.2f}"


# Each scenario: (rng, state) -> (goal, gold calls, answer facts, reply) or None when the data does not fit it.
Scenario = Callable[[random.Random, dict[str, Any], Any], "tuple[str, list[dict], list[str], str] | None"]


def _status(rng, st, t):
    oid = rng.choice(list(st["orders"]))
    status = st["orders"][oid]["status"]
    return (f"What is the status of order {oid}?", [{"name": "get_order", "arguments": {"order_id": oid}}],
            [status], f"Order {oid} is {status}.")


def _convert(rng, st, t):
    amount, src = rng.choice([20, 45, 80, 120, 250, 99.5]), rng.choice(_CURRENCIES)
    dst = rng.choice([c for c in _CURRENCIES if c != src])
    out = t.convert_currency(st, amount, src, dst)["amount"]
    call = {"name": "convert_currency", "arguments": {"amount": amount, "from_currency": src, "to_currency": dst}}
    return f"How much is {amount} {src} in {dst}?", [call], [_money(out)], f"{amount} {src} is {_money(out)} {dst}."


def _refund(rng, st, t):
    oid = _pick_order(rng, st, "delivered")
    if oid is None:
        return None
    reason = rng.choice(list(_REASONS))
    o = st["orders"][oid]
    return (f"Please refund order {oid}, {rng.choice(_REASONS[reason])}.",
            [{"name": "refund_order", "arguments": {"order_id": oid, "reason": reason}}],
            [_money(o["total"])], f"Order {oid} is refunded: {_money(o['total'])} {o['currency']}.")


def _cancel_mine(rng, st, t):
    oid = _pick_order(rng, st, "processing", unique=True)
    if oid is None:
        return None
    cid = st["orders"][oid]["customer_id"]
    email = st["customers"][cid]["email"]
    return (f"I'm {email}. Please cancel my order that is still processing.",
            [{"name": "find_customer", "arguments": {"email": email}},
             {"name": "list_orders", "arguments": {"customer_id": cid}},
             {"name": "cancel_order", "arguments": {"order_id": oid}}],
            [oid], f"Your order {oid} is cancelled.")


def _ticket(rng, st, t):
    cid = rng.choice(list(st["customers"]))
    email, (subject, priority) = st["customers"][cid]["email"], rng.choice(_SUBJECTS)
    tid = f"T-{len(st['tickets']) + 101}"
    return (f"My email is {email}: {subject}. Open a {priority}-priority ticket for me.",
            [{"name": "find_customer", "arguments": {"email": email}},
             {"name": "create_ticket", "arguments": {"customer_id": cid, "subject": subject, "priority": priority}}],
            [tid], f"I opened ticket {tid} for you.")


def _refund_in(rng, st, t, mine: bool = False):
    oid = _pick_order(rng, st, "delivered", unique=mine)
    if oid is None:
        return None
    o, reason = st["orders"][oid], rng.choice(list(_REASONS))
    dst = rng.choice([c for c in _CURRENCIES if c != o["currency"]])
    out = t.convert_currency(st, o["total"], o["currency"], dst)["amount"]
    calls = [{"name": "refund_order", "arguments": {"order_id": oid, "reason": reason}},
             {"name": "convert_currency", "arguments": {"amount": o["total"], "from_currency": o["currency"],
                                                        "to_currency": dst}}]
    if not mine:
        return (f"Refund order {oid} because {rng.choice(_REASONS[reason])}, and tell me the amount in {dst}.", calls,
                [_money(out)], f"Order {oid} is refunded: {_money(out)} {dst}.")
    email = st["customers"][o["customer_id"]]["email"]
    lookups = [{"name": "find_customer", "arguments": {"email": email}},
               {"name": "list_orders", "arguments": {"customer_id": o["customer_id"]}}]
    return (f"This is {email}. Refund my delivered order, {rng.choice(_REASONS[reason])}. How much is that in "
            f"{dst}?", lookups + calls, [_money(out)], f"Your order {oid} is refunded: {_money(out)} {dst}.")


def _refund_mine(rng, st, t):
    oid = _pick_order(rng, st, "delivered", unique=True)
    if oid is None:
        return None
    o, reason = st["orders"][oid], rng.choice(list(_REASONS))
    email = st["customers"][o["customer_id"]]["email"]
    return (f"Hello, I'm {email}. I want a refund for my delivered order: {rng.choice(_REASONS[reason])}.",
            [{"name": "find_customer", "arguments": {"email": email}},
             {"name": "list_orders", "arguments": {"customer_id": o["customer_id"]}},
             {"name": "refund_order", "arguments": {"order_id": oid, "reason": reason}}],
            [_money(o["total"])], f"Your order {oid} is refunded: {_money(o['total'])} {o['currency']}.")


def _price_in(rng, st, t):
    oid = rng.choice(list(st["orders"]))
    o = st["orders"][oid]
    dst = rng.choice([c for c in _CURRENCIES if c != o["currency"]])
    out = t.convert_currency(st, o["total"], o["currency"], dst)["amount"]
    return (f"What did order {oid} cost in {dst}?", [
        {"name": "get_order", "arguments": {"order_id": oid}},
        {"name": "convert_currency", "arguments": {"amount": o["total"], "from_currency": o["currency"],
                                                   "to_currency": dst}}],
        [_money(out)], f"Order {oid} cost {_money(out)} {dst}.")


def _count(rng, st, t):
    cid = rng.choice(list(st["customers"]))
    email = st["customers"][cid]["email"]
    n = sum(o["customer_id"] == cid for o in st["orders"].values())
    return (f"I'm {email}. How many orders do I have with you?",
            [{"name": "find_customer", "arguments": {"email": email}},
             {"name": "list_orders", "arguments": {"customer_id": cid}}], [str(n)], f"You have {n} orders.")


SCENARIOS: list[Scenario] = [_status, _convert, _refund, _cancel_mine, _ticket, _refund_in, _refund_mine, _price_in,
                             _count, lambda rng, st, t: _refund_in(rng, st, t, mine=True)]


def _episode(rng: random.Random, tools: Any, scenario: Scenario, counter: list[int]) -> tuple[dict, dict]:
    while True:
        state = _state(rng, counter)
        made = scenario(rng, copy.deepcopy(state), tools)
        if made is not None:
            return state, made


def _check(tools: Any, state: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    """The gold trajectory runs without an error on its own data (else no model could solve the episode)."""
    st = copy.deepcopy(state)
    for c in calls:
        getattr(tools, c["name"])(st, **c["arguments"])


def generate(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """Split name -> episodes; scenarios drawn round-robin, so each split holds every one of them."""
    rng, tools, counter = random.Random(seed), _tools(), [0, 1000]
    names = [s["name"] for s in tools.SCHEMAS]
    out: dict[str, list[dict]] = {}
    for split, size in SPLIT_SIZES.items():
        rows = []
        for i in range(size):
            state, (goal, calls, facts, reply) = _episode(rng, tools, SCENARIOS[i % len(SCENARIOS)], counter)
            _check(tools, state, calls)
            goal = rng.choice(_HELLO) + goal
            rows.append({"id": f"ag-{split}-{i + 1:04d}", "text": goal, "tools": names, "state": state,
                         "target": {"calls": calls, "answer": facts, "reply": reply}})
        out[split] = rows
    return out


def main(argv: list[str] | None = None) -> dict[str, Path]:
    return run_cli(__doc__.splitlines()[0], generate, DEFAULT_OUT_DIR, DEFAULT_SEED, argv)


if __name__ == "__main__":
    main()
