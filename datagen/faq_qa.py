"""Deterministic generator for the shipped ``faq-qa`` dataset (support dialogue + knowledge snippet -> short answer).

The dataset is synthetic for the same reasons as ``support-intent``: it ships inside the repository under the
project's licence with no customer data in it, and it must be reproducible byte for byte so a score recorded
months ago can be traced to exactly the examples it was computed on. The JSONL files are an output of this
script, never edited by hand; a test regenerates them and compares bytes.

What one example is, and why it is built this way:

* **A knowledge snippet** (``context``): a header and 3 to 6 facts of one fictional company. One fact answers the
  question; the others are distractors, preferably of a similar kind (standard *and* express shipping cost,
  checked *and* cabin baggage, the price of the *other* plan), so a model has to read the question rather than
  grab the first number it sees.
* **A short dialogue** (``history``, 0 to 4 turns, user/agent alternating and ending with the agent) that may
  carry the referent: the product, flight or plan is named in the history and the final question says "them"
  or "it". With two plans in the snippet, resolving "it" is what picks the right price.
* **A final question** from 6 to 9 phrasings per topic. Two phrasings per topic are held out of train and
  validation and make up most of the test questions, so a fine-tuned model cannot score by having memorised
  the question strings.
* **Answers**: the minimal span that answers the question first (it appears verbatim in the context and is the
  training target), then acceptable aliases: the longer span around it, numbers in words, the amount with the
  currency named instead of a symbol, "24/7" as "24 hours a day". The metric (``slmexp.tasks.metrics``) is
  SQuAD-style token F1 and exact match, max over the list, so aliases that normalise to the same string add
  nothing and are dropped. Every answer is 1 to 6 words.

Company facts are drawn once per seed, so a company's return window is the same in every example that shows
it, as a real help centre would be. Lengths are capped (context 600 characters, whole prompt 1100) so a row
fits small-model training at 512 tokens.

Only ``random.Random(seed)`` is used (no numpy, no set iteration, no hash-dependent order), so the output is
identical on every platform and Python version that keeps ``random``'s documented reproducibility.

Regenerate with::

    python -m datagen.faq_qa [--out DIR] [--seed 1234]
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen import allocate_splits, run_cli, write_splits

DATASET_NAME = "faq-qa"
DEFAULT_SEED = 1234
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "slmexp" / "tasks" / "data" / "faq_qa"

# Split name -> number of examples. Order matters: it fixes which topics get the remainder examples.
SPLIT_SIZES: dict[str, int] = {"train": 600, "validation": 80, "test": 200}

MIN_FACTS, MAX_FACTS = 3, 6
MAX_CONTEXT_CHARS = 600
MAX_PROMPT_CHARS = 1100
MAX_ANSWER_WORDS = 6
# Share of test questions drawn from the held-out phrasings (the rest use the train phrasings).
HELD_OUT_SHARE = 0.65
_TRIES_PER_ROW = 40

# ----------------------------------------------------------------------------------------------------
# Small helpers for values and their aliases
# ----------------------------------------------------------------------------------------------------

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKED = re.compile(r"<<(.*?)>>")


def words(n: int) -> str:
    """English words for 0-999 ("twenty-three"), for the number-in-words aliases."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" and {words(rest)}" if rest else "")


def normalise_answer(text: str) -> str:
    """SQuAD normalisation (lower case, punctuation and articles dropped, whitespace collapsed).

    The same rule the metric applies; two aliases equal under it are one answer to the metric, so only the
    first is kept.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalise_question(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the key for "is this test question new?"."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class Currency:
    symbol: str
    plural: str  # "dollars"
    unit: str  # "dollar"


_CURRENCIES = (Currency("$", "dollars", "dollar"), Currency("£", "pounds", "pound"), Currency("€", "euros", "euro"))


@dataclass(frozen=True)
class Entry:
    """One fact value of one company: ``value`` is the gold span, ``aliases`` its other accepted forms.

    ``slots`` fill the fact and question templates (e.g. the plan a price belongs to).
    """

    topic: str
    value: str
    aliases: tuple[str, ...] = ()
    slots: tuple[tuple[str, str], ...] = ()


def _money(cur: Currency, cents: int) -> tuple[str, list[str]]:
    """A price as "$4.99" with alias "4.99 dollars"; whole amounts also in words ("fifty dollars")."""
    if cents % 100 == 0:
        n = cents // 100
        return f"{cur.symbol}{n}", [f"{n} {cur.plural}", f"{words(n)} {cur.plural}"]
    num = f"{cents // 100}.{cents % 100:02d}"
    return f"{cur.symbol}{num}", [f"{num} {cur.plural}"]


_EQUIVALENTS: dict[tuple[int, str], tuple[str, ...]] = {
    (7, "days"): ("one week", "a week"),
    (14, "days"): ("two weeks", "2 weeks"),
    (21, "days"): ("three weeks", "3 weeks"),
    (28, "days"): ("four weeks", "4 weeks"),
    (30, "minutes"): ("half an hour",),
    (60, "minutes"): ("one hour", "1 hour"),
    (24, "hours"): ("one day", "1 day"),
    (48, "hours"): ("two days", "2 days"),
    (1, "year"): ("12 months", "one year"),
    (2, "years"): ("24 months",),
    (3, "years"): ("36 months",),
    (5, "years"): ("60 months",),
    (12, "months"): ("one year", "1 year"),
    (18, "months"): ("a year and a half",),
}


def _duration(n: int, unit: str) -> tuple[str, list[str]]:
    """A duration as "30 days" with "thirty days" and exact equivalents ("two weeks" for 14 days)."""
    unit = unit[:-1] if n == 1 and unit.endswith("s") else unit
    return f"{n} {unit}", [f"{words(n)} {unit}", *_EQUIVALENTS.get((n, unit), ())]


def _range(a: int, b: int, unit: str) -> tuple[str, list[str]]:
    """A range as "3-5 business days" with "3 to 5 business days" and "three to five business days"."""
    aliases = [f"{a} to {b} {unit}", f"{words(a)} to {words(b)} {unit}"]
    if unit != "days" and unit.endswith("days"):
        aliases.append(f"{a}-{b} days")
    return f"{a}-{b} {unit}", aliases


def _hours(open_: str, close: str) -> tuple[str, list[str]]:
    """Hours as "9am-9pm" with "9am to 9pm" and the spaced form "9 am to 9 pm"."""
    spaced = re.sub(r"(\d)([ap]m)", r"\1 \2", f"{open_} to {close}")
    return f"{open_}-{close}", [f"{open_} to {close}", spaced]


_TWENTY_FOUR_SEVEN = ("24/7", ["24 hours a day", "around the clock", "all day every day"])


def _size(n: int, unit: str) -> tuple[str, list[str]]:
    """A size as "10GB" with "10 GB", "10 gigabytes" and "ten gigabytes"."""
    name = {"GB": "gigabytes", "TB": "terabytes", "kg": "kilograms"}[unit]
    name = name[:-1] if n == 1 else name
    return f"{n}{unit}", [f"{n} {unit}", f"{n} {name}", f"{words(n)} {name}"]


# ----------------------------------------------------------------------------------------------------
# Companies
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What the customer talks about: "hiking boots" is introduced as ``a``, recalled as ``the`` / ``pron``."""

    a: str
    the: str
    pron: str = "it"


def _s(a: str, the: str, plural: bool = False) -> Subject:
    return Subject(a, the, "them" if plural else "it")


SECTORS: tuple[str, ...] = ("retail", "food", "saas", "telecom", "gym", "bank", "airline", "utilities")

# Retail companies carry their own product lists, so history mentions things the shop would sell.
_RETAIL: dict[str, tuple[Subject, ...]] = {
    "Northwind Outfitters": (
        _s("hiking boots", "the boots", True), _s("a rain jacket", "the jacket"), _s("a two-person tent", "the tent"),
        _s("trekking poles", "the poles", True), _s("a sleeping bag", "the sleeping bag"),
    ),
    "Bramble & Finch": (
        _s("a linen duvet cover", "the duvet cover"), _s("a table lamp", "the lamp"),
        _s("bath towels", "the towels", True), _s("a wool rug", "the rug"), _s("dinner plates", "the plates", True),
    ),
    "Voltaic Electronics": (
        _s("wireless earbuds", "the earbuds", True), _s("a smartwatch", "the watch"),
        _s("a laptop stand", "the stand"), _s("a Bluetooth speaker", "the speaker"), _s("a webcam", "the webcam"),
    ),
    "Pebble Lane Kids": (
        _s("a baby stroller", "the stroller"), _s("kids' rain boots", "the boots", True),
        _s("a wooden train set", "the train set"), _s("a car seat", "the car seat"),
    ),
    "Copperleaf Kitchen": (
        _s("a stand mixer", "the mixer"), _s("an espresso machine", "the espresso machine"),
        _s("a cast iron pan", "the pan"), _s("kitchen knives", "the knives", True),
    ),
}  # fmt: skip
_MEALS = (
    _s("a large pizza", "the pizza"), _s("sushi for four", "the sushi"), _s("two burritos", "the burritos", True),
    _s("a Thai green curry", "the curry"), _s("a family meal deal", "the meal deal"),
    _s("vegan burgers", "the burgers", True),
)  # fmt: skip
_BANK_PRODUCTS = (
    _s("a current account", "the account"), _s("a credit card", "the card"),
    _s("a savings account", "the savings account"), _s("a debit card", "the card"),
)  # fmt: skip
_DESTINATIONS = ("Lisbon", "Oslo", "Toronto", "Dubai", "Athens", "Chicago", "Dublin", "Singapore", "Nairobi")

COMPANIES: dict[str, tuple[str, ...]] = {
    "retail": tuple(_RETAIL),
    "food": ("Dishdash", "Forkful", "Munchbox", "Spoonrun", "Crumb Courier"),
    "saas": ("Tasknest", "Cloudquill", "Ledgerly", "Pixelforge Studio", "Syncrate"),
    "telecom": ("Skylark Mobile", "Bluewave Telecom", "Kestrel Connect", "Orbitel", "Lumen Mobile"),
    "gym": ("Ironpeak Fitness", "Flexhaus Gym", "Stride Studio", "Summit Athletic Club", "Pulsebox Gym"),
    "bank": ("Harbourstone Bank", "Oakridge Credit Union", "Meridian Savings", "Fernleaf Bank", "Cobalt Bank"),
    "airline": ("Aurora Air", "Pelican Airways", "Northstar Airlines", "Zephyr Jet", "Cardinal Air"),
    "utilities": ("Brightwater Energy", "Greenspark Power", "Clearflow Water", "Hearthline Gas", "Tidewell Utilities"),
}

# Plan names per sector, roughly cheapest tier first: a company gets two, in list order, and the first is the
# cheaper one with the smaller allowance, so "Lite" never costs more than "Max".
_PLAN_NAMES: dict[str, tuple[str, ...]] = {
    "saas": ("Starter", "Basic", "Plus", "Pro", "Team", "Business"),
    "telecom": ("Lite", "Essential", "Smart", "Plus", "Max", "Ultra"),
    "gym": ("Off-Peak", "Student", "Classic", "Anytime", "Premium", "All-Access"),
    "utilities": ("Standard", "Flexible", "Fixed Saver", "Green Fix", "Fixed Plus"),
}
_PLACE = {"retail": "store", "telecom": "store", "bank": "branch", "gym": "gym"}


@dataclass
class Company:
    """A fictional company and its knowledge base (filled per seed by :func:`_build_companies`)."""

    name: str
    sector: str
    currency: Currency
    plans: tuple[str, ...] = ()
    subjects: tuple[Subject, ...] = ()
    facts: dict[str, list[Entry]] = field(default_factory=dict)

    @property
    def slots(self) -> dict[str, str]:
        return {
            "company": self.name,
            "pw": "membership" if self.sector == "gym" else "plan",
            "place": _PLACE.get(self.sector, "office"),
            "unit": self.currency.unit,
        }


# ----------------------------------------------------------------------------------------------------
# Topics: fact templates, question templates, value draws
# ----------------------------------------------------------------------------------------------------
# Templates: {v} is the gold value; <<...>> marks the longer span that is also accepted (markers are removed);
# {plan} {pw} {place} {unit} {company} {days} {channel} come from the entry or the company; a question with
# {pron} or {the} refers back to the subject introduced in the history.


@dataclass(frozen=True)
class Topic:
    name: str
    family: str  # distractors are preferably drawn from the same family
    sectors: tuple[str, ...]
    facts: dict[str, tuple[str, ...]]  # sector (or "*") -> fact templates
    questions: tuple[str, ...]  # train, validation and test phrasings
    held_out: tuple[str, ...]  # test-only phrasings
    draw: Callable[[random.Random, Company], list[Entry]]

    def fact_templates(self, sector: str) -> tuple[str, ...]:
        return self.facts.get(sector, self.facts["*"])


def _one(topic: str, pair: tuple[str, list[str]], **slots: str) -> list[Entry]:
    return [Entry(topic, pair[0], tuple(pair[1]), tuple(sorted(slots.items())))]


def _per_plan(topic: str, company: Company, pairs: list[tuple[str, list[str]]]) -> list[Entry]:
    return [
        Entry(topic, value, tuple(aliases), (("plan", plan),))
        for plan, (value, aliases) in zip(company.plans, pairs, strict=True)
    ]


def _cents(rng: random.Random, options: tuple[float, ...]) -> int:
    return round(rng.choice(options) * 100)


def _draw_plan_prices(rng: random.Random, c: Company) -> list[Entry]:
    low = {"saas": (8, 10, 12, 15), "telecom": (10, 12, 15, 20), "gym": (25, 29, 35, 39), "utilities": (65, 79, 89)}
    base = rng.choice(low[c.sector])
    step = rng.choice((5, 8, 10, 15, 20))
    cents = [base * 100 + (99 if rng.random() < 0.4 else 0), (base + step) * 100]
    pairs = []
    for amount in cents:
        value, aliases = _money(c.currency, amount)
        pairs.append((value, [*aliases, f"{value} a month"]))
    return _per_plan("plan_price", c, pairs)


def _draw_allowance(topic: str, low: tuple[int, ...], high: tuple[tuple[int, str], ...]) -> Callable:
    def draw(rng: random.Random, c: Company) -> list[Entry]:
        small = _size(rng.choice(low), "GB")
        big_n, big_unit = rng.choice(high)
        big = ("unlimited", ["unlimited data", "no limit"]) if big_unit == "unlimited" else _size(big_n, big_unit)
        return _per_plan(topic, c, [small, big])

    return draw


def _draw_hours(options: tuple[tuple[str, str], ...], days: tuple[str, ...], always: float) -> Callable:
    def draw(rng: random.Random, c: Company) -> list[Entry]:
        if rng.random() < always:
            return _one("", _TWENTY_FOUR_SEVEN, days="", channel=rng.choice(_CHANNELS))
        return _one("", _hours(*rng.choice(options)), days=", " + rng.choice(days), channel=rng.choice(_CHANNELS))

    return draw


_CHANNELS = ("Phone support", "Live chat", "Our support team", "Customer service")


def _named(topic: str, draw: Callable[[random.Random, Company], list[Entry]]) -> Callable:
    """Stamp the topic name on entries built by shared helpers."""

    def wrapped(rng: random.Random, c: Company) -> list[Entry]:
        return [Entry(topic, e.value, e.aliases, e.slots) for e in draw(rng, c)]

    return wrapped


def _simple(topic: str, make: Callable[[random.Random, Company], tuple[str, list[str]]]) -> Callable:
    """A topic with one value per company, drawn by ``make``."""
    return lambda rng, c: _one(topic, make(rng, c))


def _draw_store_hours(rng: random.Random, c: Company) -> list[Entry]:
    """Shop, branch or gym hours; some gyms never close."""
    if c.sector == "gym" and rng.random() < 0.4:
        return _one("store_hours", _TWENTY_FOUR_SEVEN, days="")
    hours = rng.choice((("9am", "9pm"), ("10am", "8pm"), ("8am", "10pm"), ("9am", "5:30pm"), ("6am", "11pm")))
    days = rng.choice(("Monday to Saturday", "every day", "Monday to Friday"))
    return _one("store_hours", _hours(*hours), days=", " + days)


TOPICS: tuple[Topic, ...] = (
    Topic(
        "return_window", "returns", ("retail",),
        {"*": (
            "Returns: unused items can be returned within <<{v} of delivery>>.",
            "You can send any item back for a full refund up to <<{v} after delivery>>.",
            "Return window: <<{v} from the delivery date>>.",
        )},
        (
            "How long do I have to return something?", "What is your return window?",
            "How many days do I get to send an item back?", "What's the time limit for returns?",
            "How long do I have to send {pron} back?", "How many days do I have to return {the}?",
            "What's the deadline for returning {pron}?",
        ),
        ("If I change my mind, how long have I got to return {pron}?",
         "How much time is allowed for bringing a purchase back?"),
        _simple("return_window", lambda rng, c: _duration(rng.choice((14, 21, 28, 30, 45, 60, 90, 100)), "days")),
    ),
    Topic(
        "refund_time", "returns", ("retail", "food", "saas", "airline"),
        {"*": (
            "Refunds are processed within <<{v} of approval>>.",
            "Once approved, refunds reach your account in <<{v}>>.",
            "Refunds take <<{v} to process>>.",
        )},
        (
            "How long do refunds take?", "When will I get my money back after a refund?",
            "How quickly are refunds processed?", "How long until a refund shows up in my account?",
            "If I get a refund for {the}, how long will it take?",
        ),
        ("What's the usual turnaround for a refund?", "Roughly how many days before my refund arrives?"),
        _simple("refund_time", lambda rng, c: _range(*rng.choice(
            ((3, 5, "business days"), (5, 7, "business days"), (5, 10, "working days"), (7, 14, "days"),
             (2, 3, "business days"), (10, 14, "days"))))),
    ),
    Topic(
        "shipping_cost", "shipping", ("retail", "food"),
        {"*": ("Standard shipping costs <<{v} per order>>.", "Standard delivery: <<{v} per order>>, fully tracked."),
         "food": ("A delivery fee of <<{v} per order>> applies.", "Standard delivery fee: <<{v} per order>>.")},
        (
            "How much is standard shipping?", "What does regular delivery cost?",
            "How much do you charge for standard delivery?", "What's the normal delivery fee?",
            "How much is standard delivery for {the}?", "What will normal delivery of {the} cost me?",
        ),
        ("How much extra do I pay to have an order delivered the standard way?",
         "What's the fee for regular delivery on {the}?"),
        _simple("shipping_cost", lambda rng, c: _money(c.currency, _cents(
            rng, (1.49, 1.99, 2.49, 2.99, 3.49) if c.sector == "food" else (2.99, 3.49, 3.99, 4.50, 4.99, 5.95)))),
    ),
    Topic(
        "express_shipping_cost", "shipping", ("retail",),
        {"*": ("Express shipping costs <<{v} per order>>.", "Need it fast? Express delivery is <<{v} per order>>.")},
        (
            "How much is express shipping?", "What does next-day delivery cost?",
            "How much do you charge for express delivery?", "What's the price of express shipping?",
            "How much to get {pron} delivered express?", "What would express shipping cost for {the}?",
        ),
        ("If I need my order quickly, what's the charge for the fast option?",
         "What's the express fee if I want {the} sooner?"),
        _simple("express_shipping_cost", lambda rng, c: _money(
            c.currency, _cents(rng, (9.99, 11.99, 12.50, 14.99, 15, 19.99)))),
    ),
    Topic(
        "delivery_time", "shipping", ("retail", "food"),
        {"*": ("Standard delivery takes <<{v}>>.", "Orders usually arrive within <<{v} of dispatch>>."),
         "food": ("Most orders arrive in <<{v}>>.", "Average delivery time: <<{v} from ordering>>.")},
        (
            "How long does delivery take?", "When will my order arrive?", "How long is standard delivery?",
            "How fast do orders usually arrive?", "How long will {the} take to get to me?",
            "When should I expect {pron} to arrive?",
        ),
        ("What's the typical wait for an order to turn up?", "How soon after ordering will {pron} be here?"),
        _simple("delivery_time", lambda rng, c: _range(*rng.choice(
            ((25, 35, "minutes"), (30, 45, "minutes"), (20, 40, "minutes"), (40, 60, "minutes"))
            if c.sector == "food" else
            ((3, 5, "business days"), (2, 4, "working days"), (4, 6, "business days"), (5, 7, "days"))))),
    ),
    Topic(
        "free_shipping_minimum", "shipping", ("retail", "food"),
        {"*": ("Free standard shipping on orders over {v}.", "Orders of <<{v} or more>> ship free."),
         "food": ("Free delivery on orders over {v}.", "Spend <<{v} or more>> and delivery is free.")},
        (
            "How much do I need to spend for free shipping?", "What's the minimum order for free delivery?",
            "Is there a threshold for free shipping?", "How much do I have to spend to get delivery for free?",
            "What's the minimum spend for free delivery if I order {the}?",
        ),
        ("What order total qualifies for free shipping?", "Above what amount is delivery free?"),
        _simple("free_shipping_minimum", lambda rng, c: _money(c.currency, 100 * rng.choice(
            (15, 20, 25, 30) if c.sector == "food" else (35, 40, 50, 60, 75)))),
    ),
    Topic(
        "warranty_length", "returns", ("retail",),
        {"*": ("Warranty: all products are covered for <<{v} from purchase>>.",
               "Every item is guaranteed against defects for <<{v} from delivery>>.")},
        (
            "How long is the warranty?", "What warranty do your products come with?",
            "How long are items covered against defects?", "What's the warranty period?",
            "How long is {the} under warranty?", "If {pron} breaks, how long am I covered?",
        ),
        ("For how long is a purchase guaranteed?", "Until when does the warranty on {the} last?"),
        _simple("warranty_length", lambda rng, c: _duration(*rng.choice(
            ((1, "years"), (2, "years"), (3, "years"), (5, "years"), (12, "months"), (18, "months"))))),
    ),
    Topic(
        "store_hours", "hours", ("retail", "telecom", "bank", "gym"),
        {"*": ("Our stores are open <<{v}{days}>>.", "Store opening hours: <<{v}{days}>>."),
         "bank": ("Branches are open <<{v}{days}>>.", "Branch opening hours: <<{v}{days}>>."),
         "gym": ("The gym is open <<{v}{days}>>.", "Gym opening hours: <<{v}{days}>>.")},
        (
            "When is the {place} open?", "What are the {place} opening hours?", "What hours is your {place} open?",
            "What time does the {place} open until?", "When can I go to the {place}?",
        ),
        ("When can I visit a {place} in person?", "What time does the {place} open and close?"),
        _draw_store_hours,
    ),
    Topic(
        "support_hours", "hours", SECTORS,
        {"*": ("{channel} is available <<{v}{days}>>.", "Support hours: <<{v}{days}>> ({channel}).")},
        (
            "When is customer support available?", "What are your support hours?",
            "What times can I reach customer service?", "When can I get hold of someone in support?",
            "When is your help team around?", "When can I speak to someone about {the}?",
        ),
        ("At what times can I contact your help desk?", "When is your customer service team working?"),
        _named("support_hours", _draw_hours(
            (("8am", "8pm"), ("9am", "5pm"), ("7am", "10pm"), ("8am", "6pm"), ("10am", "7pm")),
            ("Monday to Friday", "every day", "Monday to Saturday", "seven days a week"), 0.25)),
    ),
    Topic(
        "loyalty_points", "money", ("retail", "food", "airline"),
        {"*": ("Rewards members earn <<{v} spent>>.", "Our loyalty scheme gives <<{v} spent>>.")},
        (
            "How many loyalty points do I get for each {unit} I spend?", "What's the points rate on purchases?",
            "How fast do I earn rewards points?", "How many points do I collect when I spend?",
            "What's the earn rate for rewards?", "Do I earn points on {the}? At what rate?",
        ),
        ("What's the rewards rate per {unit} spent?", "How many points does each {unit} earn me?"),
        _simple("loyalty_points", lambda rng, c: (lambda n: (
            f"{n} points per {c.currency.symbol}1",
            [f"{n} points", f"{words(n)} points per {c.currency.unit}", f"{n} points per {c.currency.unit}"],
        ))(rng.choice((1, 2, 3, 5, 10)))),
    ),
    Topic(
        "password_reset", "account", ("retail", "saas", "bank", "telecom", "utilities"),
        {"*": (
            "Password reset links expire after <<{v}>>.",
            "To reset your password, use the emailed link within <<{v}>>.",
            "Password resets: the emailed link is valid for <<{v}>>.",
        )},
        (
            "How long is the password reset link valid?", "How long do I have to use the reset link?",
            "When does the password reset email expire?", "How long does a password reset link last?",
            "How much time do I have to click the reset link?",
        ),
        ("How long before the reset email stops working?", "What's the expiry time on a password reset link?"),
        _simple("password_reset", lambda rng, c: _duration(rng.choice((10, 15, 20, 30, 60)), "minutes")),
    ),
    Topic(
        "cancellation_fee", "fees", ("telecom", "gym", "saas", "utilities", "airline"),
        {"*": ("Early cancellation fee: <<{v}>>.", "If you cancel within the minimum term, a <<{v} fee>> applies."),
         "airline": ("Changing or cancelling a booking costs <<{v} per passenger>>.",
                     "Cancellation fee: <<{v} per passenger>>.")},
        (
            "How much does it cost to cancel?", "What's the cancellation fee?",
            "Is there a charge if I cancel early? How much?", "What will I pay if I cancel?",
            "How much would it cost to cancel {the}?", "If I cancel {pron} now, what's the fee?",
        ),
        ("What penalty do I pay for cancelling?", "How much do you charge if I call off {the}?"),
        _simple("cancellation_fee", lambda rng, c: _money(c.currency, 100 * rng.choice(
            (50, 60, 75, 90) if c.sector == "airline" else (20, 25, 30, 40, 50, 75, 100)))),
    ),
    Topic(
        "plan_price", "plan", ("telecom", "saas", "gym", "utilities"),
        {"*": ("The {plan} {pw} costs <<{v} per month>>.", "{plan} {pw}: <<{v} a month>>.")},
        (
            "How much is the {plan} {pw}?", "What does the {plan} {pw} cost per month?",
            "What's the monthly price of the {plan} {pw}?", "How much is {pron} per month?",
            "How much does {pron} cost a month?",
        ),
        ("What's the monthly fee on the {plan} {pw}?", "And what would {pron} set me back each month?"),
        _draw_plan_prices,
    ),
    Topic(
        "trial_length", "plan", ("saas", "gym", "food"),
        {"*": ("New customers get a free trial of <<{v}>>.", "The free trial lasts <<{v}>>, cancel any time."),
         "food": ("{company} Plus comes with a free trial of <<{v}>>.", "{company} Plus: free for <<{v}>>.")},
        (
            "How long is the free trial?", "How long does the trial last?", "How long can I try it for free?",
            "What's the length of the free trial?", "How many days do I get free when I sign up?",
        ),
        ("For how long is the trial free?", "How long do I get before the trial ends?"),
        _simple("trial_length", lambda rng, c: _duration(rng.choice((7, 14, 30)), "days")),
    ),
    Topic(
        "storage_limit", "plan", ("saas",),
        {"*": ("The {plan} plan includes <<{v} of storage>>.", "Storage on the {plan} plan: <<{v} per user>>.")},
        (
            "How much storage comes with the {plan} plan?", "What's the storage limit on the {plan} plan?",
            "How much space does the {plan} plan give me?", "How much storage do I get with {pron}?",
            "What's the storage limit on {pron}?",
        ),
        ("How much can I store on the {plan} plan?", "Is there a cap on storage with {pron}? How much?"),
        _draw_allowance("storage_limit", (2, 5, 10, 20), ((100, "GB"), (200, "GB"), (1, "TB"), (2, "TB"))),
    ),
    Topic(
        "late_fee", "fees", ("bank", "utilities", "telecom", "gym"),
        {"*": ("Late payments incur a <<{v} late fee>>.", "If a payment is late, we charge <<{v} per late payment>>.")},
        (
            "What's the late payment fee?", "How much do you charge if I pay late?",
            "What happens if I miss a payment? How much is the fee?", "How much is the penalty for paying late?",
            "If I pay for {the} late, what's the charge?",
        ),
        ("What will it cost me if my payment is overdue?", "How big is the fee for an overdue bill?"),
        _simple("late_fee", lambda rng, c: _money(c.currency, 100 * rng.choice((10, 12, 15, 20, 25, 35)))),
    ),
    Topic(
        "data_allowance", "plan", ("telecom",),
        {"*": ("The {plan} plan comes with <<{v} data>> each month.", "{plan} plan data allowance: <<{v} a month>>.")},
        (
            "How much data is on the {plan} plan?", "What's the data allowance for the {plan} plan?",
            "How much mobile data comes with the {plan} plan?", "How much data do I get with {pron}?",
            "What's the monthly data on {pron}?",
        ),
        ("What data limit does the {plan} plan have?", "Does {pron} come with much data? How much exactly?"),
        _draw_allowance("data_allowance", (2, 5, 8, 10, 15), ((30, "GB"), (50, "GB"), (100, "GB"), (0, "unlimited"))),
    ),
    Topic(
        "class_booking", "account", ("gym",),
        {"*": ("Classes can be booked up to <<{v} in advance>>.", "Class bookings open <<{v} ahead>>.")},
        (
            "How far ahead can I book a class?", "How many days in advance can classes be booked?",
            "When do class bookings open?", "How early can I reserve a spot in a class?",
            "How far in advance can I book classes?",
        ),
        ("What's the advance booking window for classes?", "How long before a class can I sign up for it?"),
        _simple("class_booking", lambda rng, c: _duration(rng.choice((2, 3, 5, 7, 14)), "days")),
    ),
    Topic(
        "atm_fee", "fees", ("bank",),
        {"*": ("Withdrawals from other banks' ATMs cost <<{v} each>>.",
               "Using an out-of-network cash machine costs <<{v} per withdrawal>>.")},
        (
            "How much does it cost to use another bank's ATM?", "What's the fee for out-of-network cash withdrawals?",
            "Do you charge for using other ATMs? How much?", "What's the ATM fee at other banks?",
            "If I use my card at another bank's ATM, what's the fee?",
        ),
        ("What do I pay to take cash out at a non-network ATM?",
         "What's the charge for withdrawing at another bank's machine?"),
        _simple("atm_fee", lambda rng, c: _money(c.currency, _cents(rng, (1.50, 1.75, 2, 2.50, 2.95, 3.50)))),
    ),
    Topic(
        "savings_rate", "money", ("bank",),
        {"*": ("Savings accounts earn <<{v} AER>>, paid monthly.", "The easy-access savings rate is <<{v} a year>>.")},
        (
            "What interest rate do savings accounts pay?", "How much interest does the savings account earn?",
            "What's the savings rate?", "What's the interest on savings?", "What rate do I get on savings?",
        ),
        ("What annual interest would my savings earn?", "What's the current rate on an easy-access saver?"),
        _simple("savings_rate", lambda rng, c: (lambda r: (f"{r}%", [f"{r} percent", f"{r} per cent"]))(
            rng.choice(("1.5", "2.25", "3.1", "3.75", "4.2", "4.5")))),
    ),
    Topic(
        "checked_baggage", "bags", ("airline",),
        {"*": ("Economy fares include one checked bag of up to <<{v} per bag>>.",
               "Checked baggage allowance: one bag, <<{v} maximum>>.")},
        (
            "How heavy can my checked bag be?", "What's the checked baggage weight limit?",
            "How many kilos can I check in?", "What's the maximum weight for a checked suitcase?",
            "What's the checked bag limit on {the}?", "How much can my suitcase weigh on {the}?",
        ),
        ("What weight is allowed for a hold bag?", "For {the}, how heavy can the bag I check in be?"),
        _simple("checked_baggage", lambda rng, c: _size(rng.choice((20, 23, 25, 30, 32)), "kg")),
    ),
    Topic(
        "cabin_baggage", "bags", ("airline",),
        {"*": ("Cabin bags must weigh no more than <<{v} each>>.",
               "Hand luggage allowance: one cabin bag up to <<{v} in weight>>.")},
        (
            "How heavy can my carry-on be?", "What's the weight limit for cabin bags?",
            "How much can hand luggage weigh?", "What's the maximum carry-on weight?",
            "How heavy can my cabin bag be on {the}?", "What's the hand luggage limit for {the}?",
        ),
        ("What's the most my carry-on bag can weigh?", "How many kilos am I allowed in the cabin on {the}?"),
        _simple("cabin_baggage", lambda rng, c: _size(rng.choice((7, 8, 10, 12)), "kg")),
    ),
    Topic(
        "checkin_window", "bags", ("airline",),
        {"*": ("Online check-in opens <<{v} before departure>>.",
               "You can check in online from <<{v} before your flight>>.")},
        (
            "When does online check-in open?", "How early can I check in online?",
            "How long before the flight can I check in?", "When can I check in for {the}?",
            "How early does check-in open for {the}?",
        ),
        ("How far ahead of departure can I check in on the web?", "From when can I check in for {pron}?"),
        _simple("checkin_window", lambda rng, c: _duration(rng.choice((24, 30, 36, 48)), "hours")),
    ),
    Topic(
        "payment_due", "fees", ("utilities",),
        {"*": ("Bills must be paid within <<{v} of the statement date>>.",
               "Payment is due <<{v} after your bill is issued>>.")},
        (
            "How long do I have to pay my bill?", "When is my bill due?", "How many days do I get to pay a bill?",
            "What's the payment deadline for bills?", "How long have I got to pay the bill for {the}?",
        ),
        ("How soon after a bill arrives must I pay it?", "What's the due date for paying a statement?"),
        _simple("payment_due", lambda rng, c: _duration(rng.choice((10, 14, 21, 28)), "days")),
    ),
)  # fmt: skip

TOPIC_NAMES: tuple[str, ...] = tuple(t.name for t in TOPICS)
_TOPIC_BY_NAME = {t.name: t for t in TOPICS}

# ----------------------------------------------------------------------------------------------------
# Dialogue pieces
# ----------------------------------------------------------------------------------------------------

_HEADERS = (
    "{company} - help centre", "{company} help centre", "{company} FAQ", "{company} customer support notes",
    "Knowledge base: {company}",
)  # fmt: skip
_INTROS: dict[str, tuple[str, ...]] = {
    "retail": ("Hi, I bought {a} last week.", "I ordered {a} from your website.", "I'm thinking about buying {a}.",
               "Hello, I have a question about {a} I ordered.", "I just placed an order for {a}."),
    "food": ("I'm about to order {a}.", "I just ordered {a}.", "Hi, I want to get {a} delivered tonight."),
    "airline": ("Hi, I've booked {a}.", "I have {a} booked with you next week.", "I'm thinking of booking {a}."),
    "bank": ("Hi, I have {a} with you.", "I'm about to open {a}.", "Hello, it's about {a}."),
    "plan": ("Hi, I'm on {a}.", "I'm thinking of signing up for {a}.", "I joined {a} last month.",
             "Hello, I have a question about {a}."),
}  # fmt: skip
_ACKS = (
    "Thanks for reaching out! How can I help with {the}?", "Happy to help with {the}. What would you like to know?",
    "Sure, what's your question about {the}?", "Thanks for the details. What do you need to know about {the}?",
)  # fmt: skip
_GREETINGS = (
    ("Hi there.", "Hello! Welcome to {company} support. How can I help?"),
    ("Hello!", "Hi, thanks for contacting {company}. What can I do for you?"),
    ("Hi, can you help me?", "Of course! What do you need?"),
    ("Good morning.", "Good morning, you're chatting with {company}. How can I help today?"),
)
_GENERIC = (
    ("Quick question, if that's okay.", "Of course, go ahead."),
    ("I have a question about your policies.", "Sure, what would you like to know?"),
    ("Can I ask something before I go ahead?", "Absolutely, ask away."),
)
_FOLLOW_UPS = (
    ("Just one quick thing.", "No problem, ask away."),
    ("I checked the help page but I'm still not sure.", "Sure, I can check that for you."),
    ("It's my first time using {company}.", "Welcome! Go ahead with your question."),
)


def _subject_for(company: Company, entry: Entry, rng: random.Random) -> Subject:
    """The thing the history introduces: the asked plan for plan facts, else one of the company's things."""
    plan = dict(entry.slots).get("plan")
    if plan is not None:
        return _plan_subject(company, plan)
    return rng.choice(company.subjects)


def _plan_subject(company: Company, plan: str) -> Subject:
    label = f"the {plan} {company.slots['pw']}"
    return Subject(label, label, "it")


def _history(rng: random.Random, company: Company, subject: Subject, needs_subject: bool) -> list[dict[str, str]]:
    """0-4 turns, user/agent alternating, ending with the agent; includes the subject when the question needs it."""
    if needs_subject:
        shape = rng.choice(("I", "I", "GI", "IF"))
    else:
        shape = rng.choices(("", "I", "G", "Q", "GI", "IF", "GQ"), weights=(30, 20, 10, 10, 10, 10, 10))[0]
    intro_key = company.sector if company.sector in _INTROS else "plan"
    slots = {"company": company.name, "a": subject.a, "the": subject.the}
    turns: list[tuple[str, str]] = []
    for part in shape:
        if part == "I":
            turns.append((rng.choice(_INTROS[intro_key]), rng.choice(_ACKS)))
        elif part == "G":
            turns.append(rng.choice(_GREETINGS))
        elif part == "Q":
            turns.append(rng.choice(_GENERIC))
        else:
            turns.append(rng.choice(_FOLLOW_UPS))
    history: list[dict[str, str]] = []
    for user, agent in turns:
        user_text, agent_text = user.format(**slots), agent.format(**slots)
        history.append({"role": "user", "content": user_text[0].upper() + user_text[1:]})
        history.append({"role": "agent", "content": agent_text})
    return history


def _render_fact(rng: random.Random, company: Company, entry: Entry) -> tuple[str, str]:
    """(fact sentence, longer accepted span) for one entry, with a randomly chosen phrasing."""
    template = rng.choice(_TOPIC_BY_NAME[entry.topic].fact_templates(company.sector))
    text = template.format(v=entry.value, **company.slots, **dict(entry.slots))
    marked = _MARKED.search(text)
    longer = marked.group(1) if marked else entry.value
    return _MARKED.sub(r"\1", text), longer


def answer_list(gold: str, candidates: list[str]) -> list[str]:
    """Gold first, then candidates that are 1-6 words and differ from everything before under the metric's rule."""
    out: list[str] = []
    seen: set[str] = set()
    for answer in [gold, *candidates]:
        key = normalise_answer(answer)
        if key and key not in seen and len(answer.split()) <= MAX_ANSWER_WORDS:
            seen.add(key)
            out.append(answer)
    return out


def prompt_chars(row: dict) -> int:
    """Characters of everything a model reads for a row: context, each history turn with its role, question."""
    history = sum(len(turn["role"]) + 2 + len(turn["content"]) + 1 for turn in row["history"])
    return len(row["context"]) + 1 + history + len("user: ") + len(row["question"])


def _context(rng: random.Random, company: Company, entry: Entry) -> tuple[str, str]:
    """(context, longer span of the answer fact): the answer fact plus weighted distractors, shuffled."""
    topic = _TOPIC_BY_NAME[entry.topic]
    pool: list[tuple[Entry, int]] = []
    for name in TOPIC_NAMES:  # tuple order, not dict or set order, so draws are reproducible
        for other in company.facts.get(name, []):
            if other is entry:
                continue
            weight = 8 if other.topic == entry.topic else 3 if _TOPIC_BY_NAME[other.topic].family == topic.family else 1
            pool.append((other, weight))
    n_distractors = min(rng.randint(MIN_FACTS, MAX_FACTS) - 1, len(pool))
    chosen: list[Entry] = []
    while len(chosen) < n_distractors:
        pick = rng.choices([e for e, _ in pool], weights=[w for _, w in pool])[0]
        chosen.append(pick)
        pool = [(e, w) for e, w in pool if e is not pick]
    answer_fact, longer = _render_fact(rng, company, entry)
    facts = [answer_fact] + [_render_fact(rng, company, e)[0] for e in chosen]
    header = rng.choice(_HEADERS).format(company=company.name)
    while True:
        order = facts[:]
        rng.shuffle(order)
        text = header + "\n" + "\n".join(f"- {f}" for f in order)
        if len(text) <= MAX_CONTEXT_CHARS or len(facts) <= MIN_FACTS:
            return text, longer
        facts.pop()  # drop the last distractor (never the answer fact, which is first) and retry


def _build_companies(rng: random.Random) -> list[Company]:
    """All companies with their facts, drawn once per seed so a company's values agree across examples."""
    companies: list[Company] = []
    for sector in SECTORS:
        for name in COMPANIES[sector]:
            currency = rng.choice(_CURRENCIES)
            names = _PLAN_NAMES.get(sector, ())
            plans = tuple(names[i] for i in sorted(rng.sample(range(len(names)), 2))) if names else ()
            company = Company(name, sector, currency, plans)
            if sector == "retail":
                company.subjects = _RETAIL[name]
            elif sector == "food":
                company.subjects = _MEALS
            elif sector == "bank":
                company.subjects = _BANK_PRODUCTS
            elif sector == "airline":
                cities = rng.sample(_DESTINATIONS, 4)
                company.subjects = tuple(_s(f"a flight to {city}", f"the {city} flight") for city in cities)
            else:
                company.subjects = tuple(_plan_subject(company, plan) for plan in plans)
            for topic in TOPICS:
                if sector in topic.sectors:
                    company.facts[topic.name] = topic.draw(rng, company)
            companies.append(company)
    return companies


def _make_row(rng: random.Random, company: Company, topic: Topic, template: str) -> dict | None:
    """One example for ``topic`` at ``company`` phrased with ``template``; None if it breaks a length bound."""
    entry = rng.choice(company.facts[topic.name])
    subject = _subject_for(company, entry, rng)
    needs_subject = "{pron}" in template or "{the}" in template
    history = _history(rng, company, subject, needs_subject)
    slots = {**company.slots, **dict(entry.slots), "pron": subject.pron, "the": subject.the}
    question = template.format(**slots)
    context, longer = _context(rng, company, entry)
    row = {
        "context": context,
        "history": history,
        "question": question,
        "answers": answer_list(entry.value, [longer, *entry.aliases]),
        "topic": topic.name,
    }
    if entry.value not in context or len(context) > MAX_CONTEXT_CHARS or prompt_chars(row) > MAX_PROMPT_CHARS:
        return None
    return row


def row_key(row: dict) -> str:
    """Identity of an example for duplicate checks: context, history and question."""
    return json.dumps([row["context"], row["history"], row["question"]], ensure_ascii=False)


def _generate_topic(
    rng: random.Random, topic: Topic, companies: list[Company], counts: dict[str, int], seen: set[str]
) -> dict[str, list[dict]]:
    """Rows of one topic per split; companies and phrasings are drawn round-robin so coverage stays even."""
    eligible = [c for c in companies if topic.name in c.facts]
    decks: dict[str, list[Any]] = {}

    def draw(name: str, items: list[Any]) -> Any:
        if not decks.get(name):
            decks[name] = items[:]
            rng.shuffle(decks[name])
        return decks[name].pop()

    out: dict[str, list[dict]] = {}
    for split, n in counts.items():
        rows: list[dict] = []
        while len(rows) < n:
            if split == "test" and rng.random() < HELD_OUT_SHARE:
                template = draw("held_out", list(topic.held_out))
            else:
                template = draw("questions", list(topic.questions))
            for _ in range(_TRIES_PER_ROW):
                company = draw("companies", eligible)
                row = _make_row(rng, company, topic, template)
                if row is not None and row_key(row) not in seen:
                    seen.add(row_key(row))
                    rows.append(row)
                    break
            else:
                raise RuntimeError(f"{topic.name}: could not produce a new {split} row from {template!r}")
        out[split] = rows
    return out


def generate(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """Build all splits in memory.

    Args:
        seed: Seed for the single ``random.Random`` that drives every choice; same seed, same bytes.

    Returns:
        Split name -> list of ``{"id", "context", "history", "question", "answers", "topic"}`` dicts, in file
        order.
    """
    rng = random.Random(seed)
    companies = _build_companies(rng)
    allocation = allocate_splits(SPLIT_SIZES, len(TOPICS))

    seen: set[str] = set()
    splits: dict[str, list[dict]] = {split: [] for split in SPLIT_SIZES}
    for ti, topic in enumerate(TOPICS):
        counts = {split: allocation[split][ti] for split in SPLIT_SIZES}
        for split, rows in _generate_topic(rng, topic, companies, counts, seen).items():
            splits[split].extend(rows)

    out: dict[str, list[dict]] = {}
    for split, rows in splits.items():
        rng.shuffle(rows)
        out[split] = [{"id": f"qa-{split}-{i:04d}", **row} for i, row in enumerate(rows, start=1)]
    return out


def write(out_dir: str | Path = DEFAULT_OUT_DIR, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Generate and write ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` (see :func:`write_splits`).

    Args:
        out_dir: Directory to write into; created if missing.
        seed: Generation seed (see :func:`generate`).

    Returns:
        Split name -> path written.
    """
    return write_splits(generate(seed), out_dir)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: ``python -m datagen.faq_qa [--out DIR] [--seed N]``."""
    run_cli(f"Regenerate the {DATASET_NAME} dataset.", generate, DEFAULT_OUT_DIR, DEFAULT_SEED, argv)


if __name__ == "__main__":
    main()
