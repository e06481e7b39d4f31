"""Deterministic generator for the shipped ``tool-call`` dataset (a request + 5-8 tool schemas -> one call).

The task tests what a small model needs to do to be useful as a function-calling agent: pick the right tool out
of several plausible ones and fill its arguments with values of exactly the right JSON type, normalised the way
the schema asks (ISO dates, 24-hour times, enum strings, ISO currency codes). The data is synthetic on purpose:
it has to ship inside the repository under a permissive licence and be reproducible byte for byte, so that a
score recorded months ago can be traced to exactly the examples it was computed on. The JSONL files are an
output of this script, never edited by hand, and a test regenerates them and compares bytes.

How an example is built, and why:

* A library of 30 tools across everyday assistant domains, each an OpenAI-style ``function`` schema with short
  one-line descriptions, so that eight of them plus the request fit a ~1024-token training window.
* Several tools are deliberately confusable (reminder / calendar event / timer / alarm, flights / hotel,
  stock price / currency conversion / exchange rate, ride booking / fare estimate, ...). Each example offers
  4-7 distractors and usually includes at least one confusable one, so choosing the name is not trivial.
* Requests come from 6-8 hand-written templates per tool. Optional parameters sit in ``[...]`` groups that are
  kept or dropped per example, so the gold arguments hold every required parameter and exactly the optional
  ones the request states; nothing is implied, and the gold argument order is the schema's property order.
* Values are phrased the way people say them and normalised in the gold: "on 12 March 2025" -> "2025-03-12",
  "at 3pm" -> "15:00", "in fahrenheit" -> "fahrenheit", "euros" -> "EUR", "two people" -> 2. Dates are always
  explicit (never "next Friday"), because a relative date has no single right answer without a reference date.
* Light chat wrapping (greetings, thanks, a dropped final full stop) but no typos, since a typo inside a value
  would make the gold argument ambiguous.
* Templates are drawn round-robin per tool; request texts are deduplicated across the whole dataset on a key
  stricter than the published rule (lower case, punctuation dropped, whitespace collapsed).

Only ``random.Random(seed)`` is used (no numpy, no set iteration, no hash-dependent order), so the output is
identical on every platform and Python version that keeps ``random``'s documented reproducibility.

Regenerate with::

    python -m datagen.tool_call [--out DIR] [--seed 1234]
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagen import allocate_splits, run_cli, write_splits

DATASET_NAME = "tool-call"
DEFAULT_SEED = 1234
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "slmexp" / "tasks" / "data" / "tool_call"

# Split name -> number of examples. Order matters: it fixes which tools get the remainder examples.
SPLIT_SIZES: dict[str, int] = {"train": 600, "validation": 80, "test": 200}

MIN_TOOLS, MAX_TOOLS = 5, 8
# Chance that an example's distractors include at least one tool confusable with the target (when it has any).
_CONFUSABLE_RATE = 0.8
# Chance that each optional ``[...]`` group of a template is kept.
_OPTIONAL_RATE = 0.5
_RENDER_TRIES = 200
# Longest ``json.dumps(row["tools"])`` allowed; eight average schemas are ~2,450 characters, so some 8-tool offers
# are redrawn with shorter distractors.
TOOLS_JSON_MAX = 2400
_OFFER_TRIES = 20

Value = Any
Surface = tuple[str, Value]  # (how the request says it, what the gold argument holds)
Gen = Callable[[random.Random], Surface]

# ----------------------------------------------------------------------------------------------------
# Value vocabularies (fictional people and businesses; e-mail addresses on the reserved example.* domains)
# ----------------------------------------------------------------------------------------------------

_CITIES = (
    "Lisbon", "Toronto", "Nairobi", "Osaka", "Denver", "Melbourne", "Dublin", "Reykjavik", "Buenos Aires",
    "Cape Town", "Seoul", "Vancouver", "Edinburgh", "Prague", "Marrakech", "Auckland", "Chicago", "Madrid",
    "Singapore", "Istanbul", "Oslo", "Lima", "Hanoi", "Athens", "Montreal", "Zurich", "Boston", "Mumbai",
    "Berlin", "Copenhagen", "Austin", "Kraków",
)  # fmt: skip
_NEIGHBOURHOODS = (
    "Soho", "Shoreditch", "Brooklyn", "Kreuzberg", "Le Marais", "Gràcia", "Alfama", "Shibuya", "Fitzroy",
    "Mission District", "Trastevere", "Södermalm", "Camden", "Kensington Market", "Jordaan", "Wicker Park",
)  # fmt: skip
_PLACES = (
    "Central Station", "Union Square", "Riverside Mall", "City Hospital", "Grand Hotel", "Harbour Bridge",
    "Olympic Stadium", "Westfield Shopping Centre", "Main Street Library", "Greenwich Park", "Terminal 2",
    "Market Square", "Lakeside Campus", "Victoria Coach Station", "the Convention Centre", "Pier 39",
    "Museum of Modern Art", "North Gate Business Park",
)  # fmt: skip
_STREETS = (
    "Baker Street", "Elm Street", "Kingsway", "Maple Avenue", "Station Road", "Queen Street", "Oak Lane",
    "Fifth Avenue", "Mill Lane", "Harbour Road", "Cedar Court", "Church Street",
)  # fmt: skip
_FIRST_NAMES = (
    "Priya", "Tom", "Mohammed", "Sofia", "James", "Aiko", "Diego", "Olu", "Marta", "Liam", "Fatima", "Chen",
    "Hannah", "Raj", "José", "Emily", "Kwame", "Lars", "Ana", "Ben", "Mei", "Nadia", "Carlos", "Grace",
)  # fmt: skip
_LAST_NAMES = (
    "Patel", "Nguyen", "O'Brien", "Smith", "Kowalski", "Okafor", "García", "Müller", "Tanaka", "Evans",
    "Haddad", "Johansson", "Brown", "Singh", "Rossi", "Murphy",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
_SUBJECTS = (
    "Q3 budget", "Team lunch", "Invoice 4821", "Project kickoff", "Holiday cover", "Lease renewal",
    "Meeting notes", "Flight details", "Weekend plans", "Quarterly report", "Draft contract", "Birthday party",
    "Welcome aboard", "Server maintenance", "Book club", "Offsite agenda", "Design review", "Expense claim",
    "Parking permit", "Job offer",
)  # fmt: skip
_BODIES = (
    "I'll be ten minutes late", "The report is attached", "Can we move our call to later in the week",
    "Thanks for your help today", "Please review the draft when you can", "See you at the station",
    "The venue is booked", "Let me know if the numbers look right", "Happy to cover your shift",
    "I've paid the deposit", "Could you send me the slides", "The meeting room has changed",
)  # fmt: skip
_MAIL_QUERIES = (
    "invoice", "flight confirmation", "quarterly report", "gym membership", "tax return", "password reset",
    "wedding invitation", "parking permit", "shipping update", "job application", "rent", "conference tickets",
    "school trip", "insurance renewal",
)  # fmt: skip
_EVENT_TITLES = (
    "Team standup", "Dentist appointment", "Lunch with Sara", "Project review", "Parent-teacher meeting",
    "Yoga class", "Budget review", "Coffee with Marco", "Sprint planning", "Call with the bank",
    "Interview with Ana Rossi", "Book club", "Haircut", "Piano lesson", "Board meeting", "Quarterly planning",
)  # fmt: skip
_EVENT_LOCATIONS = (
    "Room 4B", "Conference Room A", "Central Library", "Harbour Café", "Building 2", "Riverside Park",
    "the main office", "Studio 3", "the town hall",
)  # fmt: skip
_REMINDER_TEXTS = (
    "call the dentist", "pay the electricity bill", "water the plants", "renew my passport",
    "pick up the dry cleaning", "send the invoice to Marta", "book the car service", "buy a birthday card for Tom",
    "submit the expense report", "take the bins out", "cancel the gym trial", "back up my laptop",
    "collect the parcel", "book flu jabs for the kids", "check the tyre pressure", "return the library books",
)  # fmt: skip
_TIMER_LABELS = ("pasta", "eggs", "laundry", "pizza", "tea", "bread", "workout", "nap", "rice", "cookies")
_ALARM_LABELS = ("gym", "school run", "medication", "flight", "meeting prep", "wake up", "dog walk")
_COMPANIES = (
    ("Apple", "AAPL"), ("Microsoft", "MSFT"), ("Tesla", "TSLA"), ("Amazon", "AMZN"), ("Nvidia", "NVDA"),
    ("Alphabet", "GOOGL"), ("Meta", "META"), ("Netflix", "NFLX"), ("Intel", "INTC"), ("IBM", "IBM"),
    ("Coca-Cola", "KO"), ("Disney", "DIS"), ("Nike", "NKE"), ("Visa", "V"), ("Pfizer", "PFE"),
    ("Walmart", "WMT"), ("Boeing", "BA"), ("Starbucks", "SBUX"), ("Adobe", "ADBE"), ("Shopify", "SHOP"),
)  # fmt: skip
# ISO code -> how people say it.
_CURRENCIES: dict[str, tuple[str, ...]] = {
    "USD": ("US dollars", "USD", "American dollars"),
    "EUR": ("euros", "EUR"),
    "GBP": ("pounds", "British pounds", "GBP", "pounds sterling"),
    "JPY": ("yen", "Japanese yen", "JPY"),
    "CAD": ("Canadian dollars", "CAD"),
    "AUD": ("Australian dollars", "AUD"),
    "CHF": ("Swiss francs", "CHF"),
    "INR": ("Indian rupees", "rupees", "INR"),
    "MXN": ("Mexican pesos", "MXN"),
    "SEK": ("Swedish kronor", "SEK"),
}
_CURRENCY_CODES = tuple(_CURRENCIES)
# Unit enum value -> (how people say it, group); conversions stay inside a group.
_UNITS: dict[str, tuple[tuple[str, ...], str]] = {
    "km": (("kilometres", "kilometers", "km"), "length"),
    "mi": (("miles",), "length"),
    "m": (("metres", "meters"), "length"),
    "ft": (("feet", "ft"), "length"),
    "cm": (("centimetres", "cm"), "length"),
    "in": (("inches",), "length"),
    "kg": (("kilograms", "kg", "kilos"), "mass"),
    "lb": (("pounds", "lbs"), "mass"),
    "l": (("litres", "liters"), "volume"),
    "gal": (("gallons", "US gallons"), "volume"),
}
_FLIGHT_CITIES = (*_CITIES, "London", "New York", "Paris", "Tokyo", "Sydney", "Dubai", "Rome", "Amsterdam")
_CUISINES = (
    "Italian", "Thai", "Mexican", "Japanese", "Indian", "vegan", "Greek", "Korean", "Lebanese", "Vietnamese",
    "Ethiopian", "Spanish",
)  # fmt: skip
_RESTAURANTS = (
    "The Olive Tree", "Sakura House", "Casa Lupe", "The Golden Fork", "Bella Napoli", "Spice Route",
    "Blue Lagoon Grill", "Le Petit Jardin", "Tandoori Nights", "The Green Room", "Harbour Kitchen",
    "Noodle Bar 88", "El Faro", "The Copper Pot",
)  # fmt: skip
_PRODUCT_QUERIES = (
    "running shoes", "wireless earbuds", "standing desks", "coffee grinders", "rain jackets", "phone cases",
    "desk lamps", "board games", "camping tents", "kids' backpacks", "yoga mats", "air fryers",
    "mechanical keyboards", "electric toothbrushes", "office chairs", "hiking boots",
)  # fmt: skip
_CANCEL_REASONS = (
    "ordered the wrong size", "found it cheaper elsewhere", "no longer needed", "delivery is too slow",
    "ordered by mistake", "duplicate order",
)  # fmt: skip
_MUSIC = (
    "Taylor Swift", "Miles Davis", "Daft Punk", "Beyoncé", "Radiohead", "Bach", "Fleetwood Mac", "Adele",
    "Bob Marley", "lo-fi hip hop", "80s rock", "jazz classics", "Nina Simone", "Kendrick Lamar", "ABBA",
    "Chopin nocturnes", "Bad Bunny", "The Beatles",
)  # fmt: skip
_PLAYLISTS = (
    "Road Trip", "Sunday Morning", "Gym Mix", "Dinner Party", "Focus Flow", "Rainy Days", "Throwbacks",
    "Study Beats", "Late Night Drive", "Kitchen Disco", "Chill Vibes", "Wedding Dance",
)  # fmt: skip
_ROOMS = (
    "kitchen", "living room", "bedroom", "hallway", "office", "bathroom", "garage", "dining room", "porch",
    "kids' room", "study", "basement",
)  # fmt: skip
# (phrase, its language); targets are always a different language.
_PHRASES = (
    ("where is the train station", "English"), ("thank you for your help", "English"),
    ("the meeting is cancelled", "English"), ("I am allergic to peanuts", "English"),
    ("how much does this cost", "English"), ("good morning everyone", "English"),
    ("can I have the bill please", "English"), ("the bus leaves at eight", "English"),
    ("I would like a window seat", "English"), ("happy birthday my friend", "English"),
    ("is breakfast included", "English"), ("we are running late", "English"),
    ("où est la gare", "French"), ("merci beaucoup", "French"), ("dónde está la estación", "Spanish"),
    ("la cuenta por favor", "Spanish"), ("wo ist der Bahnhof", "German"), ("ich habe Hunger", "German"),
    ("buongiorno a tutti", "Italian"), ("obrigado pela ajuda", "Portuguese"), ("ik ben verdwaald", "Dutch"),
)  # fmt: skip
_LANGUAGES = ("English", "Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Dutch", "Korean")
_NEWS_TOPICS = (
    "climate change", "electric cars", "space exploration", "interest rates", "the housing market", "Formula 1",
    "artificial intelligence", "renewable energy", "tennis", "the World Cup", "cybersecurity", "public transport",
    "the stock market", "vaccines", "video games", "the film industry",
)  # fmt: skip
_NOTE_CONTENTS = (
    "buy milk and eggs", "the gate code is 4471", "ideas for the team offsite", "wifi password is on the fridge",
    "book recommendations from Ana: Dune and Circe", "call the plumber about the leak",
    "Tom's shoe size is 9", "bring snacks for the hike", "the car is parked on level 3", "gift idea: a pasta maker",
    "locker number 212", "ask about the refund policy", "try the lemon cake recipe", "pack the passport chargers",
)  # fmt: skip
_NOTE_TITLES = ("Shopping", "Ideas", "Home", "Work", "Travel", "Books", "Recipes", "Garden", "Gifts", "Misc")

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
)  # fmt: skip

# ----------------------------------------------------------------------------------------------------
# Value generators: each returns (surface text, gold value)
# ----------------------------------------------------------------------------------------------------


def _pick(options: tuple[str, ...]) -> Gen:
    """A string slot whose gold value is the words of the request verbatim."""
    return lambda rng: (lambda v: (v, v))(rng.choice(options))


def _enum(surfaces: dict[str, tuple[str, ...]]) -> Gen:
    """An enum slot: uniform over the values, then one of the ways people say that value."""
    values = tuple(surfaces)

    def gen(rng: random.Random) -> Surface:
        value = rng.choice(values)
        return rng.choice(surfaces[value]), value

    return gen


def _flag(true: tuple[str, ...], false: tuple[str, ...]) -> Gen:
    """A boolean slot; both polarities are phrased so the model cannot assume "mentioned means true"."""
    return lambda rng: (rng.choice(true), True) if rng.random() < 0.6 else (rng.choice(false), False)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(rng: random.Random) -> Surface:
    """An explicit calendar date in 2025-2026 in one of six notations; the gold is ISO ``YYYY-MM-DD``."""
    start = dt.date(2025, 1, 1).toordinal()
    day = dt.date.fromordinal(start + rng.randrange(730))
    month = _MONTHS[day.month - 1]
    fmt = rng.randrange(6)
    if fmt == 0:
        text = f"{day.day} {month} {day.year}"
    elif fmt == 1:
        text = f"{month} {day.day}, {day.year}"
    elif fmt == 2:
        text = f"{day.day} {month[:3]} {day.year}"
    elif fmt == 3:
        text = f"the {_ordinal(day.day)} of {month} {day.year}"
    elif fmt == 4:
        text = f"{_WEEKDAYS[day.weekday()]} {day.day} {month} {day.year}"
    else:
        text = day.isoformat()
    return text, day.isoformat()


def _time(rng: random.Random, first_hour: int = 6) -> Surface:
    """A clock time from ``first_hour``:00 to 22:45 said the 12-hour or 24-hour way; the gold is ``HH:MM``."""
    hour = rng.randrange(first_hour, 23)
    minute = rng.choice((0, 0, 0, 15, 30, 30, 45))
    gold = f"{hour:02d}:{minute:02d}"
    if hour == 12 and minute == 0 and rng.random() < 0.4:
        return rng.choice(("noon", "midday")), gold
    h12 = hour % 12 or 12
    suffix = "am" if hour < 12 else "pm"
    fmt = rng.randrange(5)
    clock = f"{h12}" if minute == 0 else f"{h12}:{minute:02d}"
    if fmt == 0:
        return f"{clock}{suffix}", gold
    if fmt == 1:
        return f"{clock} {suffix}", gold
    if fmt == 2:
        return f"{clock} {suffix[0]}.m.", gold
    return gold, gold


def _bare_int(low: int, high: int) -> Gen:
    """An integer said as digits or (up to twelve) a word, with no noun; templates supply it."""

    def gen(rng: random.Random) -> Surface:
        n = rng.randrange(low, high + 1)
        if n < len(_NUMBER_WORDS) and rng.random() < 0.4:
            return _NUMBER_WORDS[n], n
        return str(n), n

    return gen


def _count(low: int, high: int, singular: str, plural: str, extra: tuple[str, ...] = ()) -> Gen:
    """An integer said as digits or a word (as :func:`_bare_int`), with its noun ("2 nights", "one guest");
    ``extra`` adds templates such as ``"{n} adults"`` used only for counts above one."""
    draw = _bare_int(low, high)

    def gen(rng: random.Random) -> Surface:
        number, n = draw(rng)
        if n == 1:
            return f"{number} {singular}", n
        options = (f"{number} {plural}", *(e.format(n=number) for e in extra))
        return rng.choice(options), n

    return gen


def _minutes(choices: tuple[int, ...]) -> Gen:
    """A duration whose gold is whole minutes: "half an hour" -> 30, "an hour and a half" -> 90."""
    spoken = {30: ("half an hour",), 60: ("an hour", "one hour"), 90: ("an hour and a half",),
              120: ("two hours", "2 hours"), 180: ("three hours",)}  # fmt: skip

    def gen(rng: random.Random) -> Surface:
        m = rng.choice(choices)
        options = (f"{m} minutes",) if m > 1 else ("1 minute", "one minute")
        if 1 < m < len(_NUMBER_WORDS):
            options += (f"{_NUMBER_WORDS[m]} minutes",)
        options += spoken.get(m, ())
        return rng.choice(options), m

    return gen


def _number_text(value: float | int, commas: bool) -> str:
    if isinstance(value, int):
        return f"{value:,}" if commas else str(value)
    return f"{value:,.2f}" if commas else f"{value:.2f}"


def _amount(low: int, high: int, cents_rate: float = 0.35) -> Callable[[random.Random], int | float]:
    """A money amount: a whole number (gold int) or with cents (gold float), as the request writes it."""

    def gen(rng: random.Random) -> int | float:
        whole = rng.randrange(low, high + 1)
        if rng.random() < cents_rate:
            return float(f"{whole}.{rng.choice(('50', '99', '25', '75', '40', '95'))}")
        return whole

    return gen


def _plain_amount(low: int, high: int) -> Gen:
    """An amount followed by a currency word in the template ("1,200 euros"); the gold is the number."""
    draw = _amount(low, high)

    def gen(rng: random.Random) -> Surface:
        value = draw(rng)
        return _number_text(value, value >= 1000 and rng.random() < 0.6), value

    return gen


def _money(low: int, high: int, cents_rate: float = 0.35) -> Gen:
    """A price with its currency ("$86.40", "52 euros"); the gold keeps only the number."""
    draw = _amount(low, high, cents_rate)

    def gen(rng: random.Random) -> Surface:
        value = draw(rng)
        number = _number_text(value, False)
        style = rng.randrange(5)
        if style == 0:
            return f"${number}", value
        if style == 1:
            return f"£{number}", value
        if style == 2:
            return f"€{number}", value
        return f"{number} {rng.choice(('dollars', 'euros', 'pounds'))}", value

    return gen


def _percent(choices: tuple[float | int, ...]) -> Gen:
    def gen(rng: random.Random) -> Surface:
        p = rng.choice(choices)
        return f"{p}{rng.choice(('%', '%', ' percent', ' per cent'))}", p

    return gen


def _measure(rng: random.Random) -> Surface:
    """A quantity to convert: whole or one decimal place, comma-grouped above 999 now and then."""
    if rng.random() < 0.3:
        value: int | float = rng.randrange(1, 200) + rng.randrange(1, 10) / 10
        return f"{value:.1f}", value
    n = rng.randrange(1, 2500)
    return (f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n)), n


def _temperature(rng: random.Random) -> Surface:
    """A room temperature on either scale (the tool's ``valid`` check ties it to the unit when one is said)."""
    if rng.random() < 0.5:
        value: int | float = rng.randrange(16, 27)
        if rng.random() < 0.25:
            value = value + 0.5
        return str(value), value
    value = rng.randrange(60, 79)
    return str(value), value


def _ascii(name: str) -> str:
    """ASCII-fold a name for an e-mail local part: "José O'Brien" -> "joseobrien"."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _email(rng: random.Random) -> Surface:
    first, last = _ascii(rng.choice(_FIRST_NAMES)), _ascii(rng.choice(_LAST_NAMES))
    local = rng.choice((f"{first}.{last}", f"{first}{last}", f"{first}_{last}", f"{first[0]}{last}", first))
    if rng.random() < 0.3:
        local += str(rng.randrange(1, 99))
    address = f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
    return address, address


def _order_id(rng: random.Random) -> Surface:
    """Order references in a few shop formats; the gold is the reference exactly as written."""
    fmt = rng.randrange(4)
    if fmt == 0:
        ref = f"ORD-{rng.randrange(100000, 1000000)}"
    elif fmt == 1:
        ref = f"{chr(ord('A') + rng.randrange(26))}{rng.randrange(1000000, 10000000)}"
    elif fmt == 2:
        ref = f"{rng.randrange(100, 1000)}-{rng.randrange(1000000, 10000000)}"
    else:
        ref = f"W{rng.randrange(100000000, 1000000000)}"
    return ref, ref


def _ticker(rng: random.Random) -> Surface:
    """A stock always named by its ticker (sometimes with the company), so no outside knowledge is needed."""
    company, symbol = rng.choice(_COMPANIES)
    return rng.choice((symbol, f"{company} ({symbol})")), symbol


def _place(rng: random.Random) -> Surface:
    if rng.random() < 0.3:
        address = f"{rng.randrange(1, 400)} {rng.choice(_STREETS)}"
        return address, address
    return _pick(_PLACES)(rng)


def _currency(rng: random.Random) -> Surface:
    code = rng.choice(_CURRENCY_CODES)
    return rng.choice(_CURRENCIES[code]), code


def _unit(rng: random.Random) -> Surface:
    unit = rng.choice(tuple(_UNITS))
    return rng.choice(_UNITS[unit][0]), unit


def _phrase(rng: random.Random) -> Surface:
    text, _lang = rng.choice(_PHRASES)
    return text, text


def _source_language(rng: random.Random) -> Surface:
    lang = "English" if rng.random() < 0.6 else rng.choice(_LANGUAGES)
    return lang, lang


# ----------------------------------------------------------------------------------------------------
# The tool library
# ----------------------------------------------------------------------------------------------------


def _always(args: dict[str, Value]) -> bool:
    return True


@dataclass(frozen=True)
class Param:
    """One schema property plus how to generate and phrase a value for it."""

    name: str
    type: str  # "string" | "integer" | "number" | "boolean"
    description: str
    gen: Gen
    required: bool = True
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Tool:
    """A tool schema, its request templates and the tools a model could mistake it for.

    A template is ``(text, fixed)``: ``{param}`` is a slot, ``[...]`` an optional group kept with probability
    ``_OPTIONAL_RATE``, and ``fixed`` holds arguments the wording states without a slot ("Dim the lights" ->
    ``on: true``). ``valid`` rejects value combinations that would read wrong (a trip from Lisbon to Lisbon).
    """

    name: str
    description: str
    params: tuple[Param, ...]
    templates: tuple[tuple[str, dict[str, Value]], ...]
    confusable: tuple[str, ...] = ()
    valid: Callable[[dict[str, Value]], bool] = _always

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``function`` object shown to models."""
        props: dict[str, Any] = {}
        for p in self.params:
            spec: dict[str, Any] = {"type": p.type}
            if p.enum is not None:
                spec["enum"] = list(p.enum)
            if p.description:  # omitted where the name says it all, to keep eight schemas in a small window
                spec["description"] = p.description
            props[p.name] = spec
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": [p.name for p in self.params if p.required],
            },
        }


def _t(*texts: str | tuple[str, dict[str, Value]]) -> tuple[tuple[str, dict[str, Value]], ...]:
    return tuple(t if isinstance(t, tuple) else (t, {}) for t in texts)


_UNIT_WORDS = {
    "celsius": ("Celsius", "celsius", "degrees Celsius", "°C"),
    "fahrenheit": ("Fahrenheit", "fahrenheit", "degrees Fahrenheit", "°F"),
}
_DATE_DESC = "YYYY-MM-DD"
_TIME_DESC = "HH:MM, 24-hour"
_CURRENCY_DESC = "ISO 4217 code, e.g. EUR"


def _unit_param(desc: str = "Temperature unit") -> Param:
    return Param("unit", "string", desc, _enum(_UNIT_WORDS), required=False, enum=("celsius", "fahrenheit"))


def _differ(a: str, b: str) -> Callable[[dict[str, Value]], bool]:
    return lambda args: args[a] != args[b]


def _units_compatible(args: dict[str, Value]) -> bool:
    return args["from_unit"] != args["to_unit"] and _UNITS[args["from_unit"]][1] == _UNITS[args["to_unit"]][1]


def _thermostat_ok(args: dict[str, Value]) -> bool:
    """Fahrenheit settings are 60-78, Celsius 16-26.5; without a stated unit either reads naturally."""
    unit = args.get("unit")
    return unit is None or (unit == "fahrenheit") == (args["temperature"] >= 60)


_PHRASE_LANGUAGE = dict(_PHRASES)


def _translation_ok(args: dict[str, Value]) -> bool:
    lang = _PHRASE_LANGUAGE[args["text"]]
    return args["target_language"] != lang and args.get("source_language", lang) == lang


def _directions_ok(args: dict[str, Value]) -> bool:
    """Tolls only make sense for a drive (or when no mode is said)."""
    if args["origin"] == args["destination"]:
        return False
    return "avoid_tolls" not in args or args.get("mode", "driving") == "driving"


_RIDE_TYPES = _enum({
    "standard": ("a standard car", "a regular car", "a standard ride"),
    "xl": ("an XL car", "an XL", "an XL ride"),
    "premium": ("a premium car", "a premium ride"),
})  # fmt: skip
_RIDE_PARAMS = (
    Param("pickup", "string", "", _place),
    Param("dropoff", "string", "", _place),
    Param("ride_type", "string", "", _RIDE_TYPES, required=False, enum=("standard", "xl", "premium")),
)

TOOLS: tuple[Tool, ...] = (
    Tool(
        "get_weather", "Current weather for a city.",
        (Param("city", "string", "City name", _pick(_CITIES)), _unit_param()),
        _t(
            "What's the weather like in {city} right now[ in {unit}]?",
            "Can you check the current weather in {city}[ in {unit}]?",
            "Is it raining in {city} at the moment?",
            "Current conditions for {city}[, in {unit} please].",
            "Tell me the temperature in {city} now[ in {unit}].",
            "I'm about to head out in {city}. What's the weather doing[ (in {unit})]?",
            "How cold is it in {city} today[ in {unit}]?",
            "weather in {city} right now[ in {unit}]",
        ),
        ("get_forecast", "set_thermostat", "convert_units"),
    ),
    Tool(
        "get_forecast", "Weather forecast for a city on a given date.",
        (Param("city", "string", "City name", _pick(_CITIES)), Param("date", "string", _DATE_DESC, _date),
         _unit_param()),
        _t(
            "What's the forecast for {city} on {date}[ in {unit}]?",
            "Will it rain in {city} on {date}?",
            "Weather in {city} on {date}[, in {unit}]?",
            "I'm travelling to {city} on {date}. What will the weather be like[ in {unit}]?",
            "Check the forecast for {date} in {city}[ in {unit}].",
            "How warm will it be in {city} on {date}[ in {unit}]?",
            "Give me the {city} forecast for {date}[, temperatures in {unit}].",
        ),
        ("get_weather", "search_flights", "create_calendar_event"),
    ),
    Tool(
        "send_email", "Send an email.",
        (Param("to", "string", "Email address", _email),
         Param("subject", "string", "", _pick(_SUBJECTS)),
         Param("body", "string", "", _pick(_BODIES), required=False)),
        _t(
            'Send an email to {to} with the subject "{subject}"[ saying "{body}"].',
            'Email {to} about "{subject}"[ and tell them "{body}"].',
            "Can you write to {to}? Subject: {subject}.[ Body: {body}.]",
            "Please send {to} a message titled '{subject}'[ that says '{body}'].",
            "Drop an email to {to}, subject '{subject}'[, body '{body}'].",
            'Fire off a mail to {to}: subject "{subject}"[, text "{body}"].',
        ),
        ("search_emails", "create_note", "create_reminder"),
    ),
    Tool(
        "search_emails", "Search the mailbox for emails.",
        (Param("query", "string", "", _pick(_MAIL_QUERIES)),
         Param("sender", "string", "Email address", _email, required=False),
         Param("unread_only", "boolean", "", _flag(
             ("unread only", "only the unread ones", "just unread messages"),
             ("read or unread", "including ones I've already read", "read and unread")), required=False)),
        _t(
            "Find emails about {query}[ from {sender}][, {unread_only}].",
            "Search my inbox for {query}[ from {sender}][, {unread_only}].",
            "Do I have any emails from {sender} about {query}?",
            "Look through my mail for anything mentioning {query}[, {unread_only}].",
            "Did {sender} send me anything about {query}?",
            "Pull up emails with {query} in them[ from {sender}].",
            "Check my email for the {query} message[ from {sender}][, {unread_only}].",
        ),
        ("send_email", "search_products", "get_news"),
    ),
    Tool(
        "create_calendar_event", "Add an event to the calendar.",
        (Param("title", "string", "", _pick(_EVENT_TITLES)),
         Param("date", "string", _DATE_DESC, _date),
         Param("start_time", "string", _TIME_DESC, _time),
         Param("duration_minutes", "integer", "",
               _minutes((15, 20, 30, 45, 60, 90, 120, 180)), required=False),
         Param("location", "string", "", _pick(_EVENT_LOCATIONS), required=False)),
        _t(
            'Add "{title}" to my calendar on {date} at {start_time}[ for {duration_minutes}][, location {location}].',
            "Create a calendar event called {title} on {date} at {start_time}[ lasting {duration_minutes}].",
            "Put {title} in my diary for {date}, {start_time}[, {duration_minutes} long][, in {location}].",
            "Can you put \"{title}\" on my calendar on {date} at {start_time}[ in {location}]?",
            "New event: {title}, {date}, starting {start_time}[, {duration_minutes}].",
            "I have {title} on {date} from {start_time}[ for {duration_minutes}], please add it to my calendar.",
            "Schedule '{title}' for {date} at {start_time}[ at {location}][, it runs {duration_minutes}].",
        ),
        ("create_reminder", "set_alarm", "book_table"),
    ),
    Tool(
        "create_reminder", "Create a reminder.",
        (Param("text", "string", "What to be reminded of", _pick(_REMINDER_TEXTS)),
         Param("date", "string", _DATE_DESC, _date),
         Param("time", "string", _TIME_DESC, _time, required=False)),
        _t(
            "Remind me to {text} on {date}[ at {time}].",
            "Set a reminder to {text} on {date}[ at {time}].",
            "Don't let me forget to {text} on {date}[ at {time}].",
            "Can you remind me on {date}[ at {time}] to {text}?",
            "Reminder for {date}[ at {time}]: {text}.",
            "I need a reminder to {text} on {date}[ at {time}].",
            "Ping me on {date}[ at {time}] to {text}.",
        ),
        ("create_calendar_event", "set_timer", "set_alarm", "create_note"),
    ),
    Tool(
        "set_timer", "Start a countdown timer.",
        (Param("minutes", "integer", "Length in minutes",
               _minutes((1, 2, 3, 4, 5, 7, 8, 10, 12, 15, 20, 25, 30, 40, 45, 60, 90, 120))),
         Param("label", "string", "", _pick(_TIMER_LABELS), required=False)),
        _t(
            "Set a timer for {minutes}[ for the {label}].",
            "Timer, {minutes}[, label it {label}].",
            "Count down {minutes}[ for the {label}], please.",
            "Start a countdown of {minutes}[ named {label}].",
            "I need a timer: {minutes}[, call it {label}].",
            "Can you time {minutes} for me[ for the {label}]?",
            "Start a timer[ for my {label}], {minutes}.",
        ),
        ("set_alarm", "create_reminder"),
    ),
    Tool(
        "set_alarm", "Set an alarm clock.",
        (Param("time", "string", _TIME_DESC, _time),
         Param("label", "string", "", _pick(_ALARM_LABELS), required=False),
         Param("repeat_daily", "boolean", "", _flag(
             ("every day", "daily", "repeating every day"), ("just once", "one time only", "not repeating")),
               required=False)),
        _t(
            "Set an alarm for {time}[ {repeat_daily}].",
            "Wake me up at {time}[ {repeat_daily}].",
            "Alarm at {time}[ labelled {label}], please.",
            "I need an alarm at {time}[ called {label}][, {repeat_daily}].",
            "Can you set my alarm to {time}[, {repeat_daily}]?",
            "Put an alarm on for {time}[ with the label {label}].",
            "Make an alarm[ named {label}] that goes off at {time}[ {repeat_daily}].",
        ),
        ("set_timer", "create_reminder", "create_calendar_event"),
    ),
    Tool(
        "convert_currency", "Convert an amount between currencies.",
        (Param("amount", "number", "", _plain_amount(5, 5000)),
         Param("from_currency", "string", _CURRENCY_DESC, _currency),
         Param("to_currency", "string", _CURRENCY_DESC, _currency)),
        _t(
            "Convert {amount} {from_currency} to {to_currency}.",
            "How much is {amount} {from_currency} in {to_currency}?",
            "What would {amount} {from_currency} be in {to_currency}?",
            "I have {amount} {from_currency}. How many {to_currency} is that?",
            "Change {amount} {from_currency} into {to_currency} for me.",
            "{amount} {from_currency} to {to_currency} please",
            "If I exchange {amount} {from_currency}, what do I get in {to_currency}?",
        ),
        ("get_exchange_rate", "get_stock_price", "convert_units", "calculate_tip"),
        _differ("from_currency", "to_currency"),
    ),
    Tool(
        "get_exchange_rate", "Current exchange rate between two currencies.",
        (Param("base", "string", _CURRENCY_DESC, _currency), Param("target", "string", _CURRENCY_DESC, _currency)),
        _t(
            "What's the exchange rate from {base} to {target}?",
            "What's the {base} to {target} rate today?",
            "Give me the current rate for {base} against {target}.",
            "How is the exchange rate for {base} against {target} right now?",
            "I need the conversion rate from {base} into {target}.",
            "Exchange rate, {base} to {target}?",
            "What's the rate for {base} versus {target}?",
        ),
        ("convert_currency", "get_stock_price"),
        _differ("base", "target"),
    ),
    Tool(
        "get_stock_price", "Latest share price for a stock ticker.",
        (Param("symbol", "string", "Ticker symbol, e.g. AAPL", _ticker),),
        _t(
            "What's {symbol} trading at?",
            "Price of {symbol} shares right now?",
            "How is {symbol} doing on the market today?",
            "Check the stock price for {symbol}.",
            "Give me a quote for {symbol}.",
            "Where's {symbol} at right now?",
            "How much is one share of {symbol} worth?",
            "Look up the latest share price of {symbol}.",
        ),
        ("convert_currency", "get_exchange_rate", "get_news"),
    ),
    Tool(
        "convert_units", "Convert a value between units.",
        (Param("value", "number", "", _measure),
         Param("from_unit", "string", "", _unit, enum=tuple(_UNITS)),
         Param("to_unit", "string", "", _unit, enum=tuple(_UNITS))),
        _t(
            "Convert {value} {from_unit} to {to_unit}.",
            "How many {to_unit} is {value} {from_unit}?",
            "What's {value} {from_unit} in {to_unit}?",
            "{value} {from_unit} in {to_unit}?",
            "Could you turn {value} {from_unit} into {to_unit}?",
            "Express {value} {from_unit} in {to_unit}, please.",
            "I've got {value} {from_unit}. What's that in {to_unit}?",
        ),
        ("convert_currency", "calculate_tip", "get_weather"),
        _units_compatible,
    ),
    Tool(
        "search_flights", "Search for flights between two cities.",
        (Param("origin", "string", "", _pick(_FLIGHT_CITIES)),
         Param("destination", "string", "", _pick(_FLIGHT_CITIES)),
         Param("date", "string", "YYYY-MM-DD", _date),
         Param("passengers", "integer", "",
               _count(1, 6, "passenger", "passengers", ("{n} people", "{n} adults")), required=False),
         Param("cabin", "string", "", _enum({
             "economy": ("economy", "economy class"), "premium_economy": ("premium economy",),
             "business": ("business class", "business"), "first": ("first class",)}),
               required=False, enum=("economy", "premium_economy", "business", "first"))),
        _t(
            "Find flights from {origin} to {destination} on {date}[ for {passengers}][ in {cabin}].",
            "Are there any flights {origin} to {destination} on {date}[ for {passengers}]?",
            "I need to fly from {origin} to {destination} on {date}[ in {cabin}].",
            "Search {origin} - {destination} flights for {date}[, {passengers}][, {cabin}].",
            "Look up flights to {destination} from {origin} departing {date}[ for {passengers}].",
            "What flights go from {origin} to {destination} on {date}[ in {cabin}][ for {passengers}]?",
            "Get me flight options {origin} to {destination}, leaving {date}[, {cabin}].",
        ),
        ("book_hotel", "request_ride", "get_directions", "get_forecast"),
        _differ("origin", "destination"),
    ),
    Tool(
        "book_hotel", "Book a hotel room.",
        (Param("city", "string", "City name", _pick(_FLIGHT_CITIES)),
         Param("check_in", "string", "YYYY-MM-DD", _date),
         Param("nights", "integer", "", _count(1, 14, "night", "nights")),
         Param("guests", "integer", "",
               _count(1, 6, "guest", "guests", ("{n} people", "{n} adults")), required=False)),
        _t(
            "Book a hotel in {city} from {check_in} for {nights}[ for {guests}].",
            "I need a room in {city} checking in on {check_in}, {nights}[, {guests}].",
            "Reserve a hotel in {city} for {nights} starting {check_in}[ for {guests}].",
            "Can you get me a hotel in {city}? Arriving {check_in}, staying {nights}[, {guests}].",
            "Hotel in {city}, check-in {check_in}, {nights}[, {guests}].",
            "Find and book somewhere to stay in {city} for {nights} from {check_in}[ for {guests}].",
            "We're visiting {city}: please book a room from {check_in} for {nights}[ for {guests}].",
        ),
        ("search_flights", "book_table", "search_restaurants"),
    ),
    Tool(
        "search_restaurants", "Find restaurants in an area.",
        (Param("location", "string", "City or neighbourhood", _pick(_CITIES + _NEIGHBOURHOODS)),
         Param("cuisine", "string", "", _pick(_CUISINES), required=False),
         Param("price", "string", "", _enum({
             "cheap": ("cheap", "budget-friendly", "inexpensive"), "moderate": ("mid-range", "moderately priced"),
             "expensive": ("upscale", "expensive", "high-end")}),
               required=False, enum=("cheap", "moderate", "expensive"))),
        _t(
            "Find {cuisine} restaurants in {location}[ that are {price}].",
            "Any good[ {price}] places to eat in {location}?",
            "Search for restaurants near {location}[ serving {cuisine} food].",
            "Recommend a[ {price}] {cuisine} restaurant in {location}.",
            "I'm in {location} and want[ {price}] {cuisine} food. What's around?",
            "Restaurants in {location}[, {cuisine}][, {price}]",
            "Where should we eat in {location}[ that's {price}]?",
        ),
        ("book_table", "get_directions", "book_hotel"),
    ),
    Tool(
        "book_table", "Reserve a table at a restaurant.",
        (Param("restaurant", "string", "", _pick(_RESTAURANTS)),
         Param("date", "string", _DATE_DESC, _date),
         Param("time", "string", _TIME_DESC, lambda rng: _time(rng, 11)),
         Param("party_size", "integer", "",
               _count(2, 12, "person", "people", ("{n}", "a party of {n}")))),
        _t(
            "Book a table at {restaurant} on {date} at {time} for {party_size}.",
            "Reserve {restaurant} for {party_size} on {date}, {time}.",
            "Can I get a table for {party_size} at {restaurant} on {date} at {time}?",
            "Table for {party_size} at {restaurant}, {date} at {time}.",
            "Make a dinner reservation at {restaurant} for {party_size} on {date} at {time}.",
            "We'd like to eat at {restaurant} on {date} at {time}, table for {party_size}.",
        ),
        ("search_restaurants", "create_calendar_event", "book_hotel"),
    ),
    Tool(
        "track_order", "Get the delivery status of an order.",
        (Param("order_id", "string", "Order reference", _order_id),),
        _t(
            "Where is my order {order_id}?",
            "Track order {order_id}.",
            "Has {order_id} shipped yet?",
            "What's the status of order {order_id}?",
            "When will order {order_id} arrive?",
            "Any delivery update on {order_id}?",
            "Can you check on my parcel, order number {order_id}?",
        ),
        ("cancel_order", "search_products"),
    ),
    Tool(
        "cancel_order", "Cancel an order that has not shipped.",
        (Param("order_id", "string", "Order reference", _order_id),
         Param("reason", "string", "", _pick(_CANCEL_REASONS), required=False)),
        _t(
            "Cancel order {order_id}[, reason: {reason}].",
            "Please cancel {order_id}[ (reason: {reason})].",
            "I want to cancel my order {order_id}.[ Reason: {reason}.]",
            "Stop order {order_id} before it ships[, reason {reason}].",
            "Can you cancel {order_id} for me[ (reason: {reason})]?",
            "Cancel {order_id}[ - {reason}].",
        ),
        ("track_order", "search_products"),
    ),
    Tool(
        "search_products", "Search the shop catalogue.",
        (Param("query", "string", "", _pick(_PRODUCT_QUERIES)),
         Param("max_price", "number", "", _money(15, 400, 0.25), required=False),
         Param("sort_by", "string", "", _enum({
             "price_asc": ("sorted by price, low to high", "cheapest first"),
             "price_desc": ("sorted by price, high to low", "most expensive first"),
             "rating": ("sorted by rating", "best rated first"),
             "newest": ("newest first", "sorted by newest")}),
               required=False, enum=("price_asc", "price_desc", "rating", "newest"))),
        _t(
            "Search for {query}[ under {max_price}][, {sort_by}].",
            "Find me {query}[ for less than {max_price}][, {sort_by}].",
            "Show {query}[ below {max_price}][, {sort_by}].",
            "I'm shopping for {query}[, budget {max_price}].",
            "Look up {query} in the shop[ under {max_price}][, {sort_by}].",
            "Do you sell {query}[ under {max_price}]?",
        ),
        ("track_order", "cancel_order", "search_restaurants"),
    ),
    Tool(
        "play_music", "Play a song, artist, album or genre.",
        (Param("query", "string", "", _pick(_MUSIC)),
         Param("shuffle", "boolean", "", _flag(
             ("on shuffle", "shuffled"), ("in order", "without shuffle", "not shuffled")), required=False)),
        _t(
            "Play {query}[ {shuffle}].",
            "Put on some {query}[ {shuffle}].",
            "I want to listen to {query}[ {shuffle}].",
            "Can you play {query}[ {shuffle}]?",
            "Start playing {query}[ {shuffle}].",
            "Music please: {query}[, {shuffle}].",
        ),
        ("create_playlist", "set_lights"),
    ),
    Tool(
        "create_playlist", "Create a new music playlist.",
        (Param("name", "string", "", _pick(_PLAYLISTS)),
         Param("public", "boolean", "", _flag(
             ("and make it public", "and share it publicly"), ("and keep it private", "and make it private")),
               required=False)),
        _t(
            "Make a new playlist called {name}[ {public}].",
            'Create a playlist named "{name}"[ {public}].',
            "Start a playlist: {name}[, {public}].",
            "Can you set up a playlist called {name}[ {public}]?",
            "I'd like a fresh playlist, name it {name}[ {public}].",
            "New playlist '{name}' please[, {public}].",
        ),
        ("play_music", "create_note"),
    ),
    Tool(
        "set_lights", "Turn the lights in a room on or off.",
        (Param("room", "string", "", _pick(_ROOMS)),
         Param("on", "boolean", "true = on, false = off", lambda rng: rng.choice((("on", True), ("off", False)))),
         Param("brightness", "integer", "Percent, 0-100", lambda rng: (lambda b: (
             rng.choice((f"{b}%", f"{b} percent")), b))(rng.randrange(1, 21) * 5), required=False)),
        _t(
            "Turn {on} the {room} lights.",
            "Switch {on} the lights in the {room}.",
            "Can you turn the {room} lights {on}?",
            ("Dim the {room} lights to {brightness}.", {"on": True}),
            ("Set the {room} lights to {brightness} brightness.", {"on": True}),
            ("Lights on in the {room}[ at {brightness}], please.", {"on": True}),
            ("Kill the lights in the {room}.", {"on": False}),
            ("It's too dark in the {room}. Put the lights on[ at {brightness}].", {"on": True}),
        ),
        ("set_thermostat", "play_music"),
    ),
    Tool(
        "set_thermostat", "Set the thermostat temperature.",
        (Param("temperature", "number", "", _temperature),
         Param("unit", "string", "", _enum({
             "celsius": ("degrees Celsius", "°C", "Celsius", "degrees C"),
             "fahrenheit": ("degrees Fahrenheit", "°F", "Fahrenheit", "degrees F")}),
               required=False, enum=("celsius", "fahrenheit")),
         Param("mode", "string", "", _enum({
             "heat": ("heating mode", "heat mode"), "cool": ("cooling mode", "AC mode"), "auto": ("auto mode",)}),
               required=False, enum=("heat", "cool", "auto"))),
        _t(
            "Set the thermostat to {temperature}[ {unit}][ in {mode}].",
            "Make it {temperature}[ {unit}] in here[, {mode}].",
            "Can you change the thermostat to {temperature}[ {unit}]?",
            "Thermostat to {temperature}[ {unit}] please[, {mode}].",
            "I'm cold, turn the thermostat up to {temperature}[ {unit}].",
            "Set the house temperature to {temperature}[ {unit}][ in {mode}].",
            "Bump the thermostat to {temperature}[ {unit}][ and switch to {mode}].",
        ),
        ("get_weather", "set_lights", "convert_units"),
        _thermostat_ok,
    ),
    Tool(
        "translate_text", "Translate text into another language.",
        (Param("text", "string", "", _phrase),
         Param("target_language", "string", "Language name, e.g. French", _pick(_LANGUAGES)),
         Param("source_language", "string", "Language name", _source_language, required=False)),
        _t(
            'Translate "{text}" into {target_language}[ from {source_language}].',
            'How do you say "{text}" in {target_language}?',
            "What's '{text}' in {target_language}?",
            'Can you put "{text}" into {target_language} for me[ (it\'s {source_language})]?',
            "I need '{text}' translated to {target_language}[ from {source_language}].",
            '{target_language} translation of "{text}", please[ (the original is {source_language})].',
        ),
        ("send_email", "create_note", "search_restaurants"),
        _translation_ok,
    ),
    Tool(
        "get_directions", "Route directions between two places.",
        (Param("origin", "string", "", _place),
         Param("destination", "string", "", _place),
         Param("mode", "string", "", _enum({
             "driving": ("by car", "driving"), "walking": ("on foot", "walking"),
             "transit": ("by public transport", "by transit"), "cycling": ("by bike", "cycling")}),
               required=False, enum=("driving", "walking", "transit", "cycling")),
         Param("avoid_tolls", "boolean", "", _flag(
             ("avoiding tolls", "with no toll roads"), ("toll roads are fine", "tolls allowed")), required=False)),
        _t(
            "How do I get from {origin} to {destination}[ {mode}]?",
            "Directions from {origin} to {destination}[ {mode}][, {avoid_tolls}].",
            "Give me a route to {destination} from {origin}[ {mode}].",
            "What's the best way from {origin} to {destination}[ {mode}]?",
            "Navigate from {origin} to {destination}[, {avoid_tolls}].",
            "Route me {origin} to {destination}[ {mode}][, {avoid_tolls}].",
            "Show me how to get to {destination} starting at {origin}[ {mode}].",
        ),
        ("request_ride", "estimate_ride_fare", "search_flights", "search_restaurants"),
        _directions_ok,
    ),
    Tool(
        "calculate_tip", "Work out a tip and each person's share of a bill.",
        (Param("bill_amount", "number", "", _money(12, 400, 0.5)),
         Param("tip_percent", "number", "Percent", _percent((10, 12, 12.5, 15, 18, 20, 22, 25))),
         Param("split_between", "integer", "People sharing the bill", _count(
             2, 8, "person", "ways", ("between {n} people",)), required=False)),
        _t(
            "What's a {tip_percent} tip on {bill_amount}[, split {split_between}]?",
            "Calculate a {tip_percent} tip for a {bill_amount} bill[, split {split_between}].",
            "The bill is {bill_amount}. How much is a {tip_percent} tip[ if we split it {split_between}]?",
            "We spent {bill_amount} on dinner and want to leave {tip_percent}[, split {split_between}]. "
            "What does that come to?",
            "How much should I tip at {tip_percent} on {bill_amount}?",
            "Tip calculator: {bill_amount} at {tip_percent}[, split {split_between}].",
        ),
        ("convert_currency", "convert_units"),
    ),
    Tool(
        "get_news", "Latest news headlines on a topic.",
        (Param("topic", "string", "", _pick(_NEWS_TOPICS)),
         Param("limit", "integer", "Max articles", _bare_int(3, 10), required=False)),
        _t(
            "What are the latest[ {limit}] news stories on {topic}?",
            "Show me the top {limit} headlines about {topic}.",
            "Any news about {topic} today?",
            "Catch me up on {topic}[, {limit} articles max].",
            "Headlines about {topic}[, top {limit}] please.",
            "What's happening with {topic}[, in {limit} stories]?",
        ),
        ("search_emails", "get_stock_price"),
    ),
    Tool(
        "request_ride", "Book a ride to pick you up now.",
        _RIDE_PARAMS,
        _t(
            "Get me a ride from {pickup} to {dropoff}[ in {ride_type}].",
            "Book a taxi from {pickup} to {dropoff}[ in {ride_type}].",
            "I need a car to {dropoff}. Pick me up at {pickup}[, {ride_type} please].",
            "Call me a cab from {pickup} to {dropoff}.",
            "Order a ride to {dropoff} from {pickup}[ in {ride_type}].",
            "Can you send {ride_type} to {pickup}? I'm going to {dropoff}.",
        ),
        ("estimate_ride_fare", "get_directions", "search_flights"),
        _differ("pickup", "dropoff"),
    ),
    Tool(
        "estimate_ride_fare", "Estimate a ride's fare without booking it.",
        _RIDE_PARAMS,
        _t(
            "How much would a ride from {pickup} to {dropoff} cost[ in {ride_type}]?",
            "Estimate the fare from {pickup} to {dropoff}[ for {ride_type}].",
            "What's the price of a taxi from {pickup} to {dropoff}?",
            "Roughly what would {ride_type} from {pickup} to {dropoff} cost?",
            "Don't book anything, just tell me the fare from {pickup} to {dropoff}[ in {ride_type}].",
            "Fare check: {pickup} to {dropoff}[, {ride_type}].",
        ),
        ("request_ride", "get_directions", "calculate_tip"),
        _differ("pickup", "dropoff"),
    ),
    Tool(
        "create_note", "Save a note.",
        (Param("content", "string", "", _pick(_NOTE_CONTENTS)),
         Param("title", "string", "", _pick(_NOTE_TITLES), required=False)),
        _t(
            "Make a note[ under {title}]: {content}.",
            'Write down "{content}"[ under the title "{title}"].',
            'Save a note[ called "{title}"] that says "{content}".',
            'Can you jot down "{content}"[ in a note titled "{title}"]?',
            "Create a note[ titled {title}]: {content}.",
            "Please keep this in a note[ named {title}]: {content}.",
            "Note to self[ ({title})]: {content}.",
        ),
        ("create_reminder", "send_email", "create_calendar_event"),
    ),
)

TOOLS_BY_NAME: dict[str, Tool] = {tool.name: tool for tool in TOOLS}
TOOL_NAMES: tuple[str, ...] = tuple(TOOLS_BY_NAME)

# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------

_SLOT_RE = re.compile(r"\{(\w+)\}")
_GROUP_RE = re.compile(r"\[([^\[\]]*)\]")
_OPENERS = ("Hi! ", "Hey there. ", "Quick question. ", "Hello. ", "Morning! ")
_COMMA_OPENERS = ("Hey, ", "Hi, ", "OK, ", "Right, ")
_CLOSERS = (" Thanks!", " Thank you.", " Cheers.", " Thanks in advance.", " Ta!")


def _wrap(rng: random.Random, template: str, text: str) -> str:
    """Chat-style greeting, thanks and a dropped final mark; values are never touched."""
    r = rng.random()
    if r < 0.12:
        text = rng.choice(_OPENERS) + text
    elif r < 0.24 and not template.startswith("{") and not re.match(r"I\b", text):
        text = rng.choice(_COMMA_OPENERS) + text[:1].lower() + text[1:]
    if text[-1:] in ".?!" and rng.random() < 0.12:
        text += rng.choice(_CLOSERS)
    elif text.endswith(".") and not text.endswith(".m.") and rng.random() < 0.1:
        text = text[:-1]
    return text


def _fill(template: str, surfaces: dict[str, str]) -> str:
    """Put the surface texts into the slots; "at 3 p.m.." -> "at 3 p.m." (the abbreviation ends the sentence)."""
    return _SLOT_RE.sub(lambda m: surfaces[m.group(1)], template).replace(".m..", ".m.")


def _render(rng: random.Random, tool: Tool, template: str, fixed: dict[str, Value]) -> tuple[str, dict[str, Value]]:
    """One request and its gold arguments from a template, retrying value draws the tool's ``valid`` rejects."""
    params = {p.name: p for p in tool.params}
    for _ in range(_RENDER_TRIES):
        chosen = _GROUP_RE.sub(lambda m: m.group(1) if rng.random() < _OPTIONAL_RATE else "", template)
        values: dict[str, Surface] = {p.name: p.gen(rng) for p in tool.params}
        used = set(_SLOT_RE.findall(chosen))
        args = {name: values[name][1] if name in used else fixed[name]
                for name in params if name in used or name in fixed}
        missing = [p.name for p in tool.params if p.required and p.name not in args]
        if missing:
            raise ValueError(f"{tool.name}: template {template!r} leaves required {missing} unset")
        if not tool.valid(args):
            continue
        # "at 3 p.m.." -> "at 3 p.m.": an abbreviation's full stop also ends the sentence.
        text = _fill(chosen, {name: surface for name, (surface, _value) in values.items()})
        return _wrap(rng, template, text), args
    raise RuntimeError(f"{tool.name}: no valid values for {template!r}")


def normalise(text: str) -> str:
    """The published duplicate rule: lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def dedupe_key(text: str) -> str:
    """Key used while generating; the same as :func:`normalise` (kept as a name for parity with other tasks)."""
    return normalise(text)


def _examples_for(rng: random.Random, tool: Tool, count: int, seen: set[str]) -> list[dict[str, Any]]:
    """``count`` distinct (text, arguments) pairs for one tool, drawing templates round-robin."""
    out: list[dict[str, Any]] = []
    deck: list[int] = []
    draws = 0
    while len(out) < count:
        draws += 1
        if draws > count * 50:
            raise RuntimeError(f"{tool.name}: could not produce {count} distinct requests; add templates")
        if not deck:
            deck = list(range(len(tool.templates)))
            rng.shuffle(deck)
        template, fixed = tool.templates[deck.pop()]
        text, args = _render(rng, tool, template, fixed)
        key = dedupe_key(text)
        if key in seen:
            continue
        seen.add(key)
        out.append({"text": text, "arguments": args})
    return out


def _offer(rng: random.Random, tool: Tool) -> list[dict[str, Any]]:
    """The target plus 4-7 distractors, usually including a confusable one, in random order.

    The offer must fit ``TOOLS_JSON_MAX`` characters so that prompt and answer fit a ~1024-token training window;
    an over-long draw is redrawn (same size), and only if that keeps failing are the longest distractors dropped.
    """
    n = rng.randint(MIN_TOOLS, MAX_TOOLS)
    chosen: list[str] = []
    for _ in range(_OFFER_TRIES):
        chosen = [tool.name]
        if tool.confusable and rng.random() < _CONFUSABLE_RATE:
            k = min(len(tool.confusable), rng.choice((1, 1, 2, 2, 3)), n - 1)
            chosen += rng.sample(tool.confusable, k)
        others = [name for name in TOOL_NAMES if name not in chosen]
        chosen += rng.sample(others, n - len(chosen))
        if _tools_json_len(chosen) <= TOOLS_JSON_MAX:
            break
    while _tools_json_len(chosen) > TOOLS_JSON_MAX and len(chosen) > MIN_TOOLS:
        chosen.remove(max(chosen[1:], key=lambda name: (_schema_len(name), name)))
    rng.shuffle(chosen)
    return [TOOLS_BY_NAME[name].schema() for name in chosen]


def _schema_len(name: str) -> int:
    return len(json.dumps(TOOLS_BY_NAME[name].schema(), ensure_ascii=False))


def _tools_json_len(names: list[str]) -> int:
    """Length of ``json.dumps(tools)`` for these tools (one ", " per gap plus the brackets)."""
    return sum(_schema_len(name) for name in names) + 2 * (len(names) - 1) + 2


def generate(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """Build all splits in memory.

    Args:
        seed: Seed for the single ``random.Random`` that drives every choice; same seed, same bytes.

    Returns:
        Split name -> list of ``{"id", "text", "tools", "target"}`` dicts, in file order.
    """
    rng = random.Random(seed)
    allocation = allocate_splits(SPLIT_SIZES, len(TOOLS))

    seen: set[str] = set()
    splits: dict[str, list[dict]] = {split: [] for split in SPLIT_SIZES}
    for ti, tool in enumerate(TOOLS):
        needed = sum(allocation[split][ti] for split in SPLIT_SIZES)
        examples = _examples_for(rng, tool, needed, seen)
        rng.shuffle(examples)
        start = 0
        for split in SPLIT_SIZES:
            n = allocation[split][ti]
            for ex in examples[start : start + n]:
                splits[split].append({"text": ex["text"], "tools": _offer(rng, tool),
                                      "target": {"name": tool.name, "arguments": ex["arguments"]}})
            start += n

    out: dict[str, list[dict]] = {}
    for split, rows in splits.items():
        rng.shuffle(rows)
        out[split] = [{"id": f"tc-{split}-{i:04d}", **row} for i, row in enumerate(rows, start=1)]
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
    """CLI entry point: ``python -m datagen.tool_call [--out DIR] [--seed N]``."""
    run_cli(f"Regenerate the {DATASET_NAME} dataset.", generate, DEFAULT_OUT_DIR, DEFAULT_SEED, argv)


if __name__ == "__main__":
    main()
