"""Deterministic generator for the shipped ``support-intent`` dataset (12 customer-support intents).

The dataset is synthetic on purpose: it has to ship inside the repository under a permissive licence, with no
customer data in it, and it has to be reproducible byte for byte so that a result recorded months ago can be
traced to exactly the examples it was scored on. So the JSONL files are an output of this script, never edited
by hand, and a test regenerates them and compares bytes.

How a message is built, and why:

* Every intent has 25+ hand-written core templates plus a few terse one-liners. They mix direct requests with
  indirect phrasings that avoid the label's own words, so a classifier cannot win by keyword matching alone.
* Slots (order numbers in several formats, products, dates, amounts in several currencies, names, cities, ...)
  are filled per message; one message shares one set of slot values, so "Hi, Priya here ... Thanks, Priya"
  stays consistent.
* Non-terse templates may get a greeting, a context lead-in, an angry opener and a sign-off, the way people
  actually write to support chat and email.
* Noise (typos, text-speak, dropped final punctuation, all-lowercase) is applied last, as real traffic has it.
* Templates are drawn round-robin per intent so that no template dominates; slot-free templates are capped at
  a few uses so the data does not fill up with near-copies of one sentence.
* Texts are deduplicated across the whole dataset on a key stricter than the published rule (lower case,
  punctuation dropped, whitespace collapsed), so no text can appear twice or in two splits.

Only ``random.Random(seed)`` is used (no numpy, no set iteration, no hash-dependent order), so the output is
identical on every platform and Python version that keeps ``random``'s documented reproducibility.

Regenerate with::

    python -m datagen.support_intent [--out DIR] [--seed 1234]
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from datagen import allocate_splits, run_cli, write_splits

DATASET_NAME = "support-intent"
DEFAULT_SEED = 1234
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "slmexp" / "tasks" / "data" / "support_intent"

LABELS: tuple[str, ...] = (
    "order_status",
    "cancel_order",
    "return_item",
    "refund_status",
    "billing_issue",
    "payment_method",
    "change_address",
    "account_access",
    "delete_account",
    "product_info",
    "damaged_item",
    "speak_to_human",
)

# Split name -> number of examples. Order matters: it fixes which labels get the remainder examples.
SPLIT_SIZES: dict[str, int] = {"train": 1200, "validation": 150, "test": 250}

MAX_WORDS = 60
# Renders tried per template draw before moving on; low so slot-poor templates are skipped, not forced.
_TRIES_PER_DRAW = 6
# Slot-free templates can only vary by wrapper and noise; cap them so they do not become near-duplicates.
# Terse ones get no wrapper, so every extra use would just be another typo of the same words.
_SLOTLESS_MAX_USES = 3
_SLOTLESS_TERSE_MAX_USES = 2

# ----------------------------------------------------------------------------------------------------
# Slot vocabularies
# ----------------------------------------------------------------------------------------------------

_APPAREL = (
    "merino crew-neck sweater",
    "Tundra down jacket",
    "linen summer dress",
    "kids' rain jacket",
    "denim jacket",
    "wool beanie",
    "Aero 2 running shoe",
    "slim-fit shirt",
    "hooded sweatshirt",
    "puffer vest",
    "leather belt",
    "swimsuit",
)
_GADGETS = (
    "Nimbus wireless earbuds",
    "Orbit smartwatch",
    "noise-cancelling headset",
    "4K webcam",
    "USB-C charging dock",
    "Pulse fitness tracker",
    "portable Bluetooth speaker",
    "e-reader",
    "mechanical keyboard",
    "10,000mAh power bank",
    "baby monitor",
    "electric toothbrush",
)
# Small appliances only, so "it sparked", "UK or EU plug?" and "how loud is it?" make sense for every entry.
_KITCHEN = (
    "KX-200 blender",
    "SmartBrew coffee maker",
    "air fryer XL",
    "electric kettle",
    "stand mixer",
    "espresso machine",
    "food processor",
    "4-slice toaster",
    "slow cooker",
    "rice cooker",
)
_HOME = (
    "Lumo desk lamp",
    "linen duvet cover",
    "memory foam pillow",
    "bamboo bath mat",
    "blackout curtain set",
    "wool rug",
    "weighted blanket",
    "round wall mirror",
    "ceramic vase",
    "velvet cushion",
)
# Flat-pack items: the ones that need assembly, have dimensions that matter and can arrive short of screws.
_FURNITURE = (
    "standing desk frame",
    "oak bookshelf",
    "ergonomic office chair",
    "bedside table",
    "TV stand",
    "bunk bed",
    "garden bench",
    "shoe rack",
)
_MISC = ("Trailblazer 40L backpack", "yoga mat", "robot vacuum", "ceramic dinner set", "cast iron skillet")
_PRODUCTS = _APPAREL + _GADGETS + _KITCHEN + _HOME + _FURNITURE + _MISC

_FIRST_NAMES = (
    "Priya", "Tom", "Mohammed", "Sofia", "James", "Aiko", "Diego", "Olu", "Marta", "Liam", "Fatima", "Chen",
    "Hannah", "Raj", "Zoë", "José", "Emily", "Kwame", "Siobhán", "Lars", "Ana", "Ben", "Mei", "Gareth",
    "Nadia", "Carlos", "Grace", "Ivan", "Aisha", "Patrick",
)  # fmt: skip
_LAST_NAMES = (
    "Patel", "Nguyen", "O'Brien", "Smith", "Kowalski", "Okafor", "García", "Müller", "Tanaka", "Evans",
    "Haddad", "Johansson", "Brown", "Singh", "Rossi", "Murphy",
)  # fmt: skip
_CITIES = (
    "Leeds", "Austin", "Toronto", "Melbourne", "Dublin", "Manchester", "Denver", "Auckland", "Cork",
    "Bristol", "Phoenix", "Vancouver", "Glasgow", "Perth", "Cardiff", "Chicago", "Calgary", "Brighton",
    "Seattle", "Edinburgh", "Ottawa", "Brisbane", "Nottingham", "Atlanta",
)  # fmt: skip
_STREETS = (
    "Harbour Road", "Elm Street", "Kingsway", "Maple Avenue", "Station Road", "Queen St", "Oak Lane",
    "Birchwood Drive", "Mill Lane", "Victoria Terrace", "Cedar Court", "Park View", "Church Street",
    "Willow Close",
)  # fmt: skip
_CARRIERS = ("UPS", "FedEx", "DHL", "Royal Mail", "USPS", "Evri", "Canada Post", "the courier", "DPD")
_COLORS = (
    "black", "navy", "olive green", "sand", "burgundy", "white", "charcoal grey", "dusty pink", "gray",
    "forest green", "cream", "red",
)  # fmt: skip
_SIZES = ("S", "M", "L", "XL", "XS", "medium", "large", "small", "UK 8", "UK 12", "US 9", "42", "10")
_MATERIALS = (
    "100% cotton", "real leather", "stainless steel", "bamboo", "recycled plastic", "solid wood", "wool",
)  # fmt: skip
_DEVICES = (
    "iPhone 15", "Samsung Galaxy S23", "Pixel 8", "MacBook Air", "Windows 11", "a PS5", "my iPad",
    "Android", "my Chromebook", "an old iPhone 11",
)  # fmt: skip
_CARDS = (
    "Visa", "Mastercard", "Amex", "debit card", "credit card", "Revolut card", "Discover card",
    "Monzo card", "business card",
)  # fmt: skip
_DISCOUNT_CODES = ("SPRING20", "WELCOME10", "FREESHIP", "SAVE15", "VIP25", "SUMMER30", "STUDENT10")
_DESCRIPTORS = ("SHOP*ONLINE", "PP*STORE 8821", "WEB ORDER", "ONLINE RETAIL LTD", "SQ *SHOPSUPPORT")
_ERROR_CODES = ("05", "51", "N7", "ERR_402", "PAY-1107", "do not honour", "R01")
_TIMES = ("5pm", "2:30", "lunchtime", "6 pm", "10am", "after work", "4 o'clock")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_PAST = (
    "yesterday", "last week", "last Tuesday", "on Monday", "on the 3rd", "two weeks ago", "3 days ago",
    "over a week ago", "on Friday", "last month", "at the weekend", "10 days ago",
)  # fmt: skip
_SINCE = (
    "since Monday", "since last week", "for over a week", "for five days", "since the 4th", "for three days",
    "since Friday",
)  # fmt: skip
_DAYS = ("Friday", "Saturday", "Monday", "Thursday", "tomorrow", "next Monday", "Wednesday")
_NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# code, symbol-or-None, scale relative to USD-like prices (so rupee amounts look like rupee amounts).
_CURRENCIES = (
    ("USD", "$", 1),
    ("GBP", "£", 1),
    ("EUR", "€", 1),
    ("CAD", "CA$", 1),
    ("AUD", "AU$", 1),
    ("INR", "₹", 80),
)
_CURRENCY_NAMES = ("US dollars", "euros", "pounds", "Canadian dollars", "Australian dollars")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _order_number(rng: random.Random) -> str:
    """Order references in the mixed formats real shops use, so models cannot key on one pattern."""
    fmt = rng.randrange(7)

    def digits(n: int) -> str:
        return _digits(rng, n)

    if fmt == 0:
        return f"#{chr(ord('A') + rng.randrange(26))}{digits(5)}"
    if fmt == 1:
        return f"{rng.randrange(1000, 10000)}-{digits(2)}-{digits(3)}"
    if fmt == 2:
        return f"#{rng.randrange(10000, 1000000)}"
    if fmt == 3:
        return f"ORD-{rng.choice(('2023', '2024', '2025'))}-{digits(6)}"
    if fmt == 4:
        return f"W{digits(9)}"
    if fmt == 5:
        return f"SO-{digits(6)}"
    return f"{rng.randrange(100, 1000)}-{digits(7)}-{digits(7)}"


def _amount(rng: random.Random, currency: tuple[str, str, int], above: float = 0.0) -> str:
    """A price in one of several notations; ``currency`` is fixed per message so two amounts agree.

    ``above`` makes the amount larger than a previous one, so "refunded {amount} but I paid {amount2}" and
    "on sale for {amount} but I paid {amount2}" always read as a shortfall or overcharge.
    """
    code, symbol, scale = currency
    value = (int(above) + rng.randrange(3, 60) * scale) if above else rng.randrange(5, 400) * scale
    cents = rng.random() < 0.6 and scale == 1
    number = f"{value}.{rng.choice(('99', '00', '50', '49', '95'))}" if cents else f"{value:,}"
    style = rng.randrange(3)
    if style == 0:
        return f"{symbol}{number}"
    if style == 1:
        return f"{number} {code}"
    return f"{symbol} {number}" if code == "INR" else f"{symbol}{number}"


def _phone(rng: random.Random) -> str:
    """Numbers from ranges reserved for fiction (UK 07700 900xxx, US 555-01xx) so none can be real."""
    if rng.random() < 0.5:
        return f"07700 900{rng.randrange(1000):03d}"
    return f"({rng.randrange(201, 990)}) 555-01{rng.randrange(100):02d}"


def _small_number(rng: random.Random) -> str:
    n = rng.randrange(2, 11)
    return _NUMBER_WORDS[n - 2] if rng.random() < 0.35 else str(n)


def _address(rng: random.Random) -> str:
    base = f"{rng.randrange(1, 240)} {rng.choice(_STREETS)}"
    r = rng.random()
    if r < 0.2:
        return f"Flat {rng.randrange(1, 20)}, {base}"
    if r < 0.35:
        return f"{base}, Apt {rng.randrange(1, 30)}{rng.choice('ABCDF')}"
    return base


def _ascii(name: str) -> str:
    """ASCII-fold a name for an e-mail local part: "José O'Brien" -> "joseobrien"."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _email(rng: random.Random, state: dict[str, str]) -> str:
    first = _ascii(state.get("first") or rng.choice(_FIRST_NAMES))
    sep = rng.choice((".", "_", ""))
    local = f"{first}{sep}{_ascii(rng.choice(_LAST_NAMES))}"
    if rng.random() < 0.5:
        local += str(rng.randrange(1, 99))
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


# Slot name -> filler. Fillers get the rng and the message's slot state (for values that must agree).
_SLOT_FILLERS: dict[str, Callable[[random.Random, dict[str, str]], str]] = {
    "order": lambda rng, st: _order_number(rng),
    "product": lambda rng, st: rng.choice(_PRODUCTS),
    "apparel": lambda rng, st: rng.choice(_APPAREL),
    "gadget": lambda rng, st: rng.choice(_GADGETS),
    "kitchen": lambda rng, st: rng.choice(_KITCHEN),
    "home": lambda rng, st: rng.choice(_HOME),
    "furniture": lambda rng, st: rng.choice(_FURNITURE),
    "past": lambda rng, st: rng.choice(_PAST),
    "since": lambda rng, st: rng.choice(_SINCE),
    "day": lambda rng, st: rng.choice(_DAYS),
    "n": lambda rng, st: _small_number(rng),
    "minutes": lambda rng, st: str(rng.choice((20, 25, 30, 40, 45, 50, 60, 75, 90))),
    "range": lambda rng, st: rng.choice(("3-5", "5-7", "2-4", "7-10", "3-5 working")),
    "qty": lambda rng, st: str(rng.randrange(2, 5)),
    "amount": lambda rng, st: _amount(rng, _message_currency(rng, st)),
    "amount2": lambda rng, st: _amount(rng, _message_currency(rng, st), _amount_value(st["amount"])),
    "currency_name": lambda rng, st: rng.choice(_CURRENCY_NAMES),
    "code": lambda rng, st: rng.choice(_DISCOUNT_CODES),
    "descriptor": lambda rng, st: rng.choice(_DESCRIPTORS),
    "errcode": lambda rng, st: rng.choice(_ERROR_CODES),
    "card": lambda rng, st: rng.choice(_CARDS),
    "last4": lambda rng, st: f"{rng.randrange(10000):04d}",
    "email": _email,
    "phone": lambda rng, st: _phone(rng),
    "address": lambda rng, st: _address(rng),
    "street": lambda rng, st: rng.choice(_STREETS),
    "housenum": lambda rng, st: str(rng.randrange(1, 120)),
    "apt": lambda rng, st: f"{rng.randrange(1, 30)}{rng.choice(('', 'A', 'B', 'C'))}",
    "city": lambda rng, st: rng.choice(_CITIES),
    "first": lambda rng, st: rng.choice(_FIRST_NAMES),
    "full": lambda rng, st: f"{st.get('first') or rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
    "name": lambda rng, st: rng.choice(_FIRST_NAMES),
    "size": lambda rng, st: rng.choice(_SIZES),
    "color": lambda rng, st: rng.choice(_COLORS),
    "material": lambda rng, st: rng.choice(_MATERIALS),
    "device": lambda rng, st: rng.choice(_DEVICES),
    "age": lambda rng, st: str(rng.randrange(3, 13)),
    "time": lambda rng, st: rng.choice(_TIMES),
    "carrier": lambda rng, st: rng.choice(_CARRIERS),
}


def _amount_value(text: str) -> float:
    return float(re.sub(r"[^\d.]", "", text))


def _message_currency(rng: random.Random, state: dict[str, str]) -> tuple[str, str, int]:
    """Pick the message's currency once, so "charged {amount} instead of {amount2}" uses one currency."""
    if "_currency" not in state:
        state["_currency"] = str(rng.randrange(len(_CURRENCIES)))
    return _CURRENCIES[int(state["_currency"])]


# ----------------------------------------------------------------------------------------------------
# Templates. {slot} fills a slot; {slot2} is a second value distinct from {slot}; {a_slot} adds "a"/"an".
# ----------------------------------------------------------------------------------------------------

_CORE: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is my order {order}? It's been {n} days and still nothing.",
        "Can you tell me when order {order} will arrive?",
        "I placed an order {past} and haven't had a single shipping update.",
        "The tracking for {order} hasn't moved {since}. Is it stuck somewhere?",
        "My {product} was supposed to be here {past}. Can you check where it is?",
        "Any update on {order}? {carrier} just says 'in transit' and nothing else.",
        "Could you send me the tracking number for my last order?",
        "Has my order shipped yet? Order number {order}.",
        "I need the {product} by {day} for a birthday. Will it get here in time?",
        "What's the estimated delivery date for {order}?",
        "The tracking link in your email just gives an error. Where's my package?",
        "I ordered {a_product} {past}. How much longer am I going to have to wait?",
        "Still waiting on my parcel from {past}, order {order}.",
        "Is there any way to see where my parcel is right now?",
        "Order {order} has said 'processing' for {n} days. When does it actually leave?",
        "{carrier} shows my parcel sitting at a depot in {city}. Any idea when it'll be out for delivery?",
        "Just checking on order {order}, placed {past}. Is it on its way?",
        "Do you know if my {product} has left the warehouse yet?",
        "The confirmation said {range} business days and we're past that now. What's happening with {order}?",
        "I haven't received my order and I'm starting to think it's lost. Ref {order}.",
        "Will my order arrive before the weekend? It's {order}.",
        "I paid {amount} {past} and have no idea when my stuff is coming.",
        "How do I track an order I placed as a guest?",
        "Is it normal that my tracking number shows no information yet?",
        "The app says 'preparing for shipment' for {order}. When will it go out?",
        "Can someone look into {order}? It was meant to be delivered {past}.",
        "I'm away from {day} so I really need to know when my parcel will turn up.",
        "It's a gift for {name} and I'm getting nervous. Has {order} been dispatched?",
        "Which courier is bringing my order? I'd like to keep an eye on it.",
    ),
    "cancel_order": (
        "I'd like to cancel order {order}, please.",
        "Please cancel my order from {past}, I picked the wrong size.",
        "I placed an order by mistake about an hour ago. Can you stop it before it ships?",
        "Can I still cancel {order}? The app says it hasn't shipped.",
        "I don't need the {product} anymore, please don't send it.",
        "I ordered the {product} twice by accident. Can one of them be cancelled? Order {order}.",
        "How do I cancel an order? I can't find the option anywhere in the app.",
        "I've changed my mind about the {product}. Is it too late to call off the order?",
        "Please stop order {order} from going out. I found it cheaper elsewhere.",
        "It's been {n} days and it still hasn't shipped, so I'll buy it locally. Please cancel {order}.",
        "Can I take just one item off order {order}? I still want the rest.",
        "Can you void order {order}? Nothing has been dispatched yet.",
        "Please scrap the order I made {past}, my partner already bought the same thing.",
        "I'd like to withdraw order {order} before it leaves the warehouse.",
        "The delivery date is now {n} weeks away, which is too late for me. Please cancel the whole thing.",
        "I hit 'place order' by accident while browsing. Can you undo that?",
        "Do I get charged anything if I cancel {order} today?",
        "I want to cancel my pre-order for the {product}.",
        "Please don't process order {order}. I no longer need it.",
        "The cancel button disappeared once the order said 'processing'. I need {order} cancelled.",
        "I ordered {qty} of the {product} instead of 1. Can you kill the order so I can redo it?",
        "I'd like to back out of my purchase from {past}, it hasn't been sent yet.",
        "My kid placed order {order} on my account without asking. Please stop it before it ships.",
        "I no longer want anything in order {order}. Please make sure it isn't dispatched.",
        "Changed my mind on the {product}, please don't ship it. Order {order}.",
        "Is there still time to stop {order}? I used the wrong delivery option and want to start over.",
        "We're not going ahead with this purchase after all. Order {order} can be dropped.",
        "I'm getting the {product} as a gift now, so I don't need the one I ordered {past}. Can you stop it?",
    ),
    "return_item": (
        "I'd like to return the {apparel} I bought {past}. It doesn't fit.",
        "How do I send back an item? The {product} isn't what I expected.",
        "Can I exchange the {apparel} for a size {size}?",
        "What's your return policy? I'd like to send back {a_product}.",
        "I need a return label for order {order}.",
        "The {color} {apparel} looks different in person. Can I swap it for another colour?",
        "Is it too late to return something I bought {past}?",
        "I got the {product} as a present and want to exchange it for something else. No receipt though.",
        "Can I drop off a return at one of your stores in {city} instead of posting it?",
        "I'd like to send the {product} back, it's just not for me. Order {order}.",
        "Do I have to pay for return shipping on {order}?",
        "The {apparel} is too small, can I get the next size up instead?",
        "I want to return two items from order {order} and keep the rest.",
        "Where do I print the return slip? I've already packed the {product}.",
        "Bought the wrong model of {product}. Can I swap it for the right one?",
        "Can I return an opened {product}? I only tried it once.",
        "The {home} doesn't really suit our place. How can I send it back?",
        "I'd like to start a return for the {product}. It's unused and still in the box.",
        "I ordered two sizes of the {apparel} to try on. How do I send back the one that doesn't fit?",
        "My return window closes {day}. Can I still start a return today?",
        "Could I exchange instead of returning? I'd like the {apparel} in {color}.",
        "Is there a restocking fee if I send back the {product}?",
        "How many days do I have to send something back?",
        "The {product} works fine, I just don't need it anymore. What are my options for sending it back?",
        "Can you email me a prepaid label so I can post order {order} back?",
        "The {apparel} fits but I don't love it. Can I swap it for store credit or something else?",
        "I'd rather have the {apparel2} than the {apparel}. Can I trade one for the other?",
        "Can I send the {kitchen} back through {carrier}, or do I have to use your courier?",
    ),
    "refund_status": (
        "I returned the {product} {past} and still haven't got my refund.",
        "When will I get my money back for order {order}?",
        "You said my refund of {amount} was processed {past} but it's not in my account.",
        "How long do refunds take to show up on a credit card?",
        "The item never arrived and I've given up waiting. I'd like a refund for {order}.",
        "Can I get a refund instead of store credit?",
        "You received my return {past}, so where is my {amount}?",
        "Has the refund for {order} been issued yet?",
        "I cancelled order {order} {past} but the money still hasn't come back.",
        "The refund I got was only {amount}, but I paid {amount2}. Why the difference?",
        "Please refund the {amount} for the {product}. I sent it back last week.",
        "Your email said 'refund initiated' {n} days ago. Where's the money?",
        "I'm still out of pocket {amount} for a return you confirmed weeks ago.",
        "Can you give me a reference number for my refund so my bank can trace it?",
        "It's been {n} working days since you approved the refund and nothing is on my statement.",
        "I want my money back for {order}.",
        "Will the money go back to PayPal or come as a gift card?",
        "Could you check whether my reimbursement for the {product} went through?",
        "I was told I'd be refunded within {n} days. It's been two weeks.",
        "Do you refund the shipping cost too, or only the item price?",
        "{carrier} says the {product} got back to your warehouse {past}. When do I get reimbursed?",
        "Still no sign of the credit on my card for order {order}.",
        "I'd like to request a refund for the {product} I sent back.",
        "It's been a month and I still don't have my {amount} back for {order}.",
        "Was my refund approved? I never got a confirmation email.",
        "The money for my returned {product} hasn't appeared. Can you check what's going on?",
        "My bank says nothing has been sent from your side. Can you confirm the refund actually went out?",
        "Only part of my money came back for {order}. Is the rest still on its way?",
    ),
    "billing_issue": (
        "I was charged twice for order {order}.",
        "There's a charge of {amount} from you on my card that I don't recognise.",
        "Why was I billed {amount2} when the checkout total said {amount}?",
        "There's a {amount} 'service fee' on my invoice that nobody mentioned.",
        "Can you send me a proper VAT invoice for order {order}? I need it for expenses.",
        "My subscription renewed and took {amount} even though I turned off auto-renew.",
        "The discount code {code} was accepted but I still paid full price.",
        "You took {amount} from my account {past} and I haven't ordered anything.",
        "The invoice for {order} has the wrong company name on it. Can you reissue it?",
        "I'm being charged for shipping even though my order was over the free delivery threshold.",
        "My bank statement shows two identical payments of {amount} {past}.",
        "I was charged in {currency_name} instead of my local currency and the conversion fee is ridiculous.",
        "I've been charged {amount} for a membership I never signed up for.",
        "The price went up between adding to cart and paying. I was charged {amount} more than shown.",
        "Can I get an itemised receipt for my last purchase?",
        "What is this {amount} payment labelled '{descriptor}' on my statement?",
        "You've charged me sales tax on an order shipped abroad, that can't be right.",
        "My invoice total doesn't match what I paid. Order {order}.",
        "The {product} was on sale for {amount} but I paid {amount2}. Order {order}.",
        "The amount taken from my card is wrong.",
        "I got an email saying my invoice is overdue but I paid it {past}.",
        "Why did my card get a {amount} authorisation hold?",
        "There are three payments to you this month and I only placed one order.",
        "Please explain the extra {amount} on my bill.",
        "My account says I owe {amount} but I've paid everything already.",
        "Somebody on your side has made a mistake with my bill, it's {amount} higher than it should be.",
        "My statement has {amount} from you {past} on top of the order total. What is that for?",
        "I need the invoice for {order} addressed to my business, not to me personally.",
    ),
    "payment_method": (
        "How do I update the card on my account? The old one expired.",
        "My payment keeps getting declined at checkout even though the card works everywhere else.",
        "Can I pay with PayPal?",
        "I'd like to add a new card and remove my old {card}.",
        "Do you accept Apple Pay or Google Pay?",
        "Checkout says 'payment failed' every time. I've tried {n} times now.",
        "Can I split a payment between a gift card and my debit card?",
        "How do I change the default payment method for my subscription?",
        "My bank sent me a replacement card, so the details you have on file need changing.",
        "Is it possible to pay by bank transfer instead of card?",
        "Your site won't take my {card}, it just says 'card not supported'.",
        "I want to switch my subscription from card to PayPal.",
        "The 3D Secure window never loads so I can't finish paying.",
        "Do you offer Klarna or any buy now, pay later option?",
        "Where in the app do I remove a saved card?",
        "My transaction was declined with error code {errcode}. What does that mean?",
        "Can I use a prepaid card to pay?",
        "Please remove the card ending {last4} from my account.",
        "I tried to pay with my {card} but it was rejected, and my bank says there's no problem their end.",
        "Is cash on delivery available in {city}?",
        "Can I pay in {currency_name}?",
        "The expiry date field won't accept my new card. How do I save it?",
        "Is there any way to pay without a credit card? I don't have one.",
        "I'm trying to use my gift card balance but it doesn't show up at checkout.",
        "Can I add my partner's card as a backup way to pay?",
        "My card ending {last4} was cancelled after fraud, so I need to put a new one on my account.",
        "I'd like to stop using my {card} for orders and use a different one from now on.",
        "Your checkout keeps bouncing my card back with 'try another method'. What other methods are there?",
    ),
    "change_address": (
        "I need to change the delivery address for order {order}.",
        "I'm moving to {city} next week. Can you update my shipping address?",
        "I put the wrong house number on my order. It should be {address}.",
        "Can you send order {order} to my work address instead?",
        "Please update my billing address to {address}, {city}.",
        "Is it possible to redirect my parcel to a pickup point?",
        "I made a typo in the postcode on {order}. Can that be fixed before it ships?",
        "How do I edit my saved address in the app?",
        "If I'm not in, could the driver leave it with my neighbour at number {housenum}?",
        "I won't be home {day}. Can the delivery be moved to another day?",
        "Please add 'Apt {apt}' to my shipping address, the courier couldn't find me last time.",
        "My order is going to my old flat. Can you change it to {address}?",
        "Can I have the {product} shipped to my mum's in {city} instead?",
        "Please add a note for the driver: leave it in the side porch.",
        "I just realised order {order} is going to the address I lived at {n} years ago. Help!",
        "I've moved house, so the address on my account needs updating.",
        "Can I change the recipient name on order {order}? It's a gift for {name}.",
        "The street name on my order is misspelled. It should be {street}.",
        "Please ship {order} to {address}, {city} instead of the address on file.",
        "Where can I change my default delivery address? Settings only shows the old one.",
        "Is it too late to change where {order} is being delivered?",
        "I've relocated and want future orders to go to {city}.",
        "Can you add my phone number to the delivery details so the driver can ring me? It's {phone}.",
        "We'll be away, can you hold the package and deliver it after {day}?",
        "Can you change the billing address on my account? I moved to {city} last month.",
        "The flat number is missing from order {order}, it's {apt}. The driver won't find me otherwise.",
        "Please send my parcel to {address} rather than my home, I'm staying there for a while.",
        "The courier can't get into my building. Can you add the gate code 4{housenum} to my delivery notes?",
    ),
    "account_access": (
        "I can't log in to my account. It says my password is wrong but I'm sure it's right.",
        "The password reset email never arrives. I've checked spam.",
        "My account got locked after too many attempts. How do I unlock it?",
        "I lost my phone and now I can't get the two-factor code.",
        "How do I reset my password?",
        "I'm not receiving the verification code by SMS.",
        "It keeps saying 'account not found' for {email}, but I've ordered from you before.",
        "I think someone changed my password. I can't get in and I got an alert about a login from {city}.",
        "The reset link says it has expired every time I click it.",
        "I signed up with Google but now the login page wants a password I never set.",
        "I can't remember which email I used to register. Can you help me get back in?",
        "The app logs me out every few minutes and won't let me back in.",
        "My authenticator app was wiped when I got a new phone. How do I get into my account now?",
        "I changed my email address and now I can't sign in at all.",
        "Every time I sign in it just sends me back to the login screen.",
        "Your site says my account is suspended. Why, and how do I get it back?",
        "Can't get into my account, tried resetting twice and nothing works.",
        "I keep getting 'invalid credentials' even after changing my password.",
        "The login code goes to an old phone number I don't have anymore.",
        "Is there a way to turn off two-step verification? I keep getting stuck.",
        "I've been trying to sign in {since} and it just says 'something went wrong'.",
        "Can you send the password reset to {email}? The one on file is an old work address.",
        "My account was hacked, the email on it has been changed and I can't get in.",
        "The captcha on the sign-in page never accepts my answer, so I can't get any further.",
        "I'm stuck on the 'verify it's you' screen and the code you text me doesn't work.",
        "My saved password stopped working {past} and I can't see my orders anymore.",
        "I get an 'unusual activity' message whenever I try to get into my profile.",
        "It won't let me in on the app or the website. Can you check my account under {email}?",
    ),
    "delete_account": (
        "Please delete my account and all the data you hold about me.",
        "How do I close my account?",
        "I want to permanently remove my account. I won't be shopping here again.",
        "Under GDPR I'm requesting erasure of all my personal data.",
        "Can you deactivate my account? I no longer use it.",
        "I'd like to stop being a customer and have my profile removed entirely.",
        "Please remove my details from your systems, including my address and payment info.",
        "Where's the option to delete my account? I can't find it in settings.",
        "I made a second account by accident. Can you delete the one under {email}?",
        "I'm done with your service. Close my account.",
        "If I delete my account, do my past orders and invoices get deleted too?",
        "Please wipe everything you have on me and confirm in writing when it's done.",
        "My late father had an account with you ({email}). How can we get it closed?",
        "I'd like my account and order history erased, please confirm once completed.",
        "I don't want you storing my card or address anymore. Remove my account.",
        "Please terminate my membership and delete my customer profile.",
        "How long does it take to fully delete an account after I ask?",
        "Please close the account registered to {email} and unsubscribe me from everything.",
        "After all the news about data leaks I'd rather not have an account with you. Please remove it.",
        "Can you tell me what data you hold on me and then erase it?",
        "Please get rid of my account entirely. I don't want to hear from you again.",
        "I no longer want an account with your store. Can you remove it and all associated info?",
        "I'm moving abroad and won't use this account again, please shut it down.",
        "I'd like to exercise my right to be forgotten. Account email: {email}.",
        "Is it possible to erase my profile without contacting anyone, or do you have to do it?",
        "Please make sure nothing about me is left on file after you close my account.",
        "I opened an account {past} by mistake, I only meant to check out as a guest. Please remove it.",
    ),
    "product_info": (
        "Does the {product} come in {color}?",
        "Is the {gadget} compatible with {device}?",
        "What size should I get? I'm usually a size {size} but your sizing seems different.",
        "When will the {product} be back in stock?",
        "What's the battery life on the {gadget}?",
        "Is the {apparel} machine washable?",
        "What are the dimensions of the {furniture}? I need to know if it fits in a small flat.",
        "Does the {product} come with a warranty?",
        "Is the {product} available in the {city} store or only online?",
        "What's the difference between the {gadget} and the newer version?",
        "Is the {product} made of {material}?",
        "Does the {gadget} work in cold weather? I'll be using it outdoors a lot.",
        "Does the {kitchen} come with a UK plug or an EU plug?",
        "Does the {apparel} run true to size or should I size up?",
        "How much does the {product} weigh?",
        "Is there a {size} in the {apparel}? The page just says 'select size'.",
        "Will the {gadget} work with {device}? The listing doesn't say.",
        "Is the {furniture} suitable for a child of {age}?",
        "Do you know when the {color} one is coming back?",
        "Is the {gadget} waterproof or just water resistant?",
        "What's included in the box with the {product}?",
        "Before I buy: does the {furniture} need assembling?",
        "Do you sell replacement parts for the {kitchen}?",
        "Is the {kitchen} dishwasher safe?",
        "How loud is the {kitchen}? I live in a flat with thin walls.",
        "What's the capacity of the {kitchen}? I'm cooking for a family of {qty}.",
        "Trying to decide between the {product} and the {product2} for a gift. Which would you recommend?",
        "Is the {gadget} the latest model? I don't want to buy last year's version.",
        "Is the {apparel} lined? I'm wondering whether it's warm enough for winter in {city}.",
    ),
    "damaged_item": (
        "My {product} arrived broken.",
        "The {product} I received is cracked down the side.",
        "I opened the box and the {gadget} won't turn on at all.",
        "I ordered {a_apparel} but got {a_apparel2} instead.",
        "The box I got has {a_kitchen2} in it, but I ordered {a_kitchen}.",
        "There are parts missing from my {furniture}, the screws weren't in the box.",
        "The box was crushed and the {kitchen} inside is dented.",
        "Order {order} came in the wrong colour. I ordered {color} and got something else.",
        "My {gadget} stopped working after {n} days.",
        "The {apparel} has a hole in the seam, clearly a manufacturing fault.",
        "Only {qty} of the 5 items in order {order} were in the package.",
        "The glass on the {product} was shattered when I unboxed it.",
        "The charger that came with my {gadget} doesn't even fit the port.",
        "I received someone else's order instead of mine. Order {order}.",
        "The {kitchen} leaked everywhere the first time I used it.",
        "Arrived today in pieces. Not impressed.",
        "The {kitchen} smelled burnt and sparked when I plugged it in. I'm scared to use it.",
        "I ordered a size {size} but the {apparel} in the box is a size {size2}.",
        "There's a big scratch across the screen of my new {gadget}.",
        "The instructions mention a remote but there wasn't one in the box.",
        "The {product} has clearly been used before, there are marks on it and the seal was open.",
        "What do I do? The {kitchen} makes a horrible grinding noise.",
        "The zip broke the first time I wore the {apparel}.",
        "I got the old model of the {gadget}, not the one in the listing.",
        "Half the plates in my dinner set arrived chipped and one is snapped in two.",
        "There's water damage on the box and the {product} inside is ruined.",
        "The {furniture} wobbles because one leg is shorter than the others.",
        "The left earbud of my Nimbus wireless earbuds gives no sound at all, right out of the box.",
        "The {product} you sent me is not what's on my order confirmation {order}.",
    ),
    "speak_to_human": (
        "Can I speak to a real person please?",
        "I want to talk to a human, not a bot.",
        "Please have someone call me on {phone}.",
        "This is the third time I'm contacting you. I want this escalated to a manager.",
        "Is there a phone number I can call to talk to someone?",
        "Your chatbot keeps going in circles. Get me an agent.",
        "I'd like to make a formal complaint about how I've been treated.",
        "Transfer me to a supervisor.",
        "I don't want automated answers. Can a live agent pick this up?",
        "Can someone from your team ring me back? Mornings are best.",
        "I'd prefer to sort this out over the phone. What's the best number?",
        "Nobody has answered my emails in {n} days. I need an actual person to look at this.",
        "I want to speak with whoever is in charge of customer service.",
        "Can I book a callback? I'm free after {time}.",
        "None of these options fit my problem. Can I chat with someone?",
        "Is anyone actually reading these messages?",
        "I've been on hold for {minutes} minutes. Can someone just call me back?",
        "Please connect me to a member of staff.",
        "This needs a person, it's too complicated for a chatbot.",
        "I'd like my case reviewed by a senior member of staff.",
        "Can you put me through to the complaints department?",
        "Can I get someone on live chat who can actually do something?",
        "Honestly I'm fed up. I want to deal with someone who can make a decision.",
        "My issue is complicated and I'd rather explain it on the phone. My number is {phone}.",
        "How do I reach your support team by phone? I can't find a number anywhere.",
        "Stop sending me canned replies and let me talk to somebody.",
        "I've explained this {n} times already. Please pass me to your manager.",
        "Could a colleague of yours give me a ring on {phone} around {time}?",
    ),
}

# Terse one-liners: sent as-is (no greeting or sign-off), only noise is added.
_TERSE: dict[str, tuple[str, ...]] = {
    "order_status": (
        "where is my order",
        "order {order} status?",
        "tracking number pls",
        "any ETA on {order}?",
        "package still not here",
        "has {order} shipped?",
        "when will my stuff arrive",
    ),
    "cancel_order": (
        "cancel order {order}",
        "pls cancel my order",
        "need to cancel {order} asap",
        "dont send {order}, changed my mind",
        "stop my order please",
        "can i still stop my order from going out? placed it {past}",
    ),
    "return_item": (
        "return label for {order}?",
        "how do i return something",
        "want to exchange for size {size}",
        "return policy?",
        "need to send this back",
        "i want to return order {order}, how do i do that",
    ),
    "refund_status": (
        "refund status for {order}?",
        "where is my refund",
        "still waiting on my refund",
        "when do i get my money back",
        "money back for {order} pls",
        "i was promised a refund {past}. nothing yet",
    ),
    "billing_issue": (
        "double charged!!",
        "wrong amount charged on {order}",
        "need an invoice for {order}",
        "what is this {amount} charge?",
        "overcharged on my last order",
        "why was i charged {amount}",
    ),
    "payment_method": (
        "update my card",
        "card declined again",
        "do you take paypal?",
        "payment not going through",
        "change payment method",
        "how do i put a different card on my account",
    ),
    "change_address": (
        "change address on {order}",
        "new address: {address}, {city}",
        "need to update my shipping address",
        "wrong postcode on my order",
        "wrong address on my order pls fix",
        "send it to {address} instead",
    ),
    "account_access": (
        "can't log in",
        "password reset not working",
        "locked out of my account",
        "2fa code not arriving",
        "forgot my password",
        "my account is locked, please help",
    ),
    "delete_account": (
        "delete my account",
        "close my account pls",
        "remove all my data",
        "account deletion request",
        "i want my account gone",
    ),
    "product_info": (
        "{product} in stock?",
        "does the {apparel} come in {color}?",
        "sizing advice for the {apparel}?",
        "{gadget} specs?",
        "is the {gadget} compatible with {device}?",
    ),
    "damaged_item": (
        "item arrived broken",
        "wrong item received",
        "{product} is defective",
        "missing parts in my order",
        "damaged on arrival",
        "the {product} came damaged what do i do",
    ),
    "speak_to_human": (
        "human please",
        "talk to agent",
        "real person pls",
        "call me back on {phone}",
        "escalate this",
        "AGENT. HUMAN. REPRESENTATIVE. Please.",
    ),
}

_OPENINGS = (
    "Hi,", "Hi there,", "Hello,", "Hey,", "Good morning,", "Good afternoon.", "Hi team,",
    "Dear Customer Service,", "Hello, hope you're well.", "Hi, {first} here.", "Hey there!", "Hiya,",
    "Hello support,", "Quick question.", "Sorry to bother you.", "Hi, I hope you can help.", "Evening,",
    "Dear Sir or Madam,", "Hi all,", "Hello again,",
)  # fmt: skip
_LEADINS = (
    "I've been a customer for {n} years.",
    "I ordered through the app.",
    "I'm on the mobile site.",
    "Long-time customer here.",
    "I already looked through the help centre.",
    "This is my first time ordering from you.",
    "I'm writing on behalf of my mum.",
    "I tried the FAQ but it didn't answer this.",
    "I'm messaging from my phone, sorry for any typos.",
)
_CLOSINGS = (
    "Thanks.", "Thank you!", "Thanks in advance.", "Cheers.", "Many thanks, {first}", "Regards, {full}",
    "Thx", "Appreciate the help.", "Please get back to me asap.", "Let me know.",
    "Looking forward to hearing from you.", "Kind regards, {first}", "Thanks so much!", "ty",
    "Best, {first}", "Thank you for your help.", "Would appreciate a quick reply.", "- {first}",
)  # fmt: skip
_ANGRY_OPENERS = (
    "This is ridiculous.", "Really not happy right now.", "Seriously?!", "Third time asking.",
    "Very disappointed.", "Unbelievable.", "I'm losing my patience.", "Not good enough.",
)  # fmt: skip
_ANGRY_CLOSERS = (
    "Sort it out.", "Not impressed.", "Fix this please.", "I expect a reply today.", "Terrible service.",
)  # fmt: skip
# Intents where an angry opener reads naturally; on "can I pay in euros?" it reads like a template artefact.
_FRUSTRATED_INTENTS = frozenset(
    {
        "order_status",
        "refund_status",
        "billing_issue",
        "account_access",
        "damaged_item",
        "speak_to_human",
    }
)

_TEXTSPEAK = (
    (re.compile(r"\byou\b", re.IGNORECASE), "u"),
    (re.compile(r"\bplease\b", re.IGNORECASE), "pls"),
    (re.compile(r"\bthanks\b", re.IGNORECASE), "thx"),
    (re.compile(r"\bI'm\b"), "im"),
    (re.compile(r"\bdon't\b", re.IGNORECASE), "dont"),
    (re.compile(r"\bcan't\b", re.IGNORECASE), "cant"),
    (re.compile(r"\bbecause\b", re.IGNORECASE), "cuz"),
    (re.compile(r"\bI've\b"), "ive"),
    (re.compile(r"\bwhat's\b", re.IGNORECASE), "whats"),
)
_KEY_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj", "i": "uo",
    "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "r": "et", "s": "ad",
    "t": "ry", "u": "yi", "v": "cb", "w": "qe", "y": "tu",
}  # fmt: skip
_SLOT_RE = re.compile(r"\{(\w+)\}")
_WORD_RE = re.compile(r"^([A-Za-z]{4,})([.,!?]?)$")


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    """Prefix "a" or "an" by first letter; enough for the fixed product list (USB is the one exception)."""
    if phrase[:1].lower() in "aeiou" and not phrase.startswith("USB"):
        return f"an {phrase}"
    return f"a {phrase}"


def _fill(name: str, rng: random.Random, state: dict[str, str]) -> str:
    """Value for one slot, cached per message so a slot repeated in one message keeps its value."""
    with_article = name.startswith("a_")
    key = name[2:] if with_article else name
    if key not in state:
        base = key.rstrip("0123456789")
        if base not in _SLOT_FILLERS:  # a slot whose name merely ends in digits, like {last4}
            base = key
        if key != base:
            _fill(base, rng, state)  # {x2} is defined relative to {x}, so {x} must exist first
        filler = _SLOT_FILLERS[key if key in _SLOT_FILLERS else base]
        value = filler(rng, state)
        # A numbered slot ({product2}) must differ from the unnumbered one ({product}).
        for _ in range(20):
            if key == base or value != state.get(base):
                break
            value = filler(rng, state)
        state[key] = value
    return _article(state[key]) if with_article else state[key]


def _render(template: str, rng: random.Random, state: dict[str, str]) -> str:
    return _SLOT_RE.sub(lambda m: _fill(m.group(1), rng, state), template)


def _typo(rng: random.Random, text: str) -> str:
    """One realistic keyboard slip (swap, drop, double, neighbour key) in a plain word of 4+ letters.

    Only whole alphabetic tokens are touched so order numbers, emails and amounts stay valid.
    """
    tokens = text.split(" ")
    candidates = [i for i, tok in enumerate(tokens) if _WORD_RE.match(tok)]
    if not candidates:
        return text
    i = rng.choice(candidates)
    match = _WORD_RE.match(tokens[i])
    assert match is not None
    word, punct = match.group(1), match.group(2)
    pos = rng.randrange(1, len(word) - 1)  # never the first letter, so capitals stay put
    op = rng.randrange(4)
    if op == 0:
        word = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    elif op == 1:
        word = word[:pos] + word[pos + 1 :]
    elif op == 2:
        word = word[:pos] + word[pos] + word[pos:]
    else:
        neighbours = _KEY_NEIGHBOURS.get(word[pos].lower())
        word = word[:pos] + rng.choice(neighbours) + word[pos + 1:] if neighbours else word[:pos] + word[pos + 1:]
    tokens[i] = word + punct
    return " ".join(tokens)


def _add_noise(rng: random.Random, text: str) -> str:
    """Chat-style noise applied last; each kind is independent so combinations occur naturally."""
    if rng.random() < 0.10:
        for pattern, short in _TEXTSPEAK:
            if rng.random() < 0.7:
                text = pattern.sub(short, text)
    if rng.random() < 0.16:
        text = _typo(rng, text)
        if rng.random() < 0.25:
            text = _typo(rng, text)
    if rng.random() < 0.12 and text[-1:] in ".!?":
        text = text.rstrip(".!?")
    if rng.random() < 0.15:
        text = text.lower()
    return text


def _compose(rng: random.Random, label: str, template: str, terse: bool) -> str:
    """One customer message: optional greeting/lead-in/sign-off around the core template, then noise."""
    state: dict[str, str] = {}
    if terse:
        return _add_noise(rng, _render(template, rng, state))
    parts: list[str] = []
    angry = label in _FRUSTRATED_INTENTS and rng.random() < 0.12
    if angry:
        parts.append(rng.choice(_ANGRY_OPENERS))
    elif rng.random() < 0.45:
        parts.append(rng.choice(_OPENINGS))
    if rng.random() < 0.12:
        parts.append(rng.choice(_LEADINS))
    parts.append(template)
    if angry and rng.random() < 0.5:
        parts.append(rng.choice(_ANGRY_CLOSERS))
    elif not angry and rng.random() < 0.4:
        parts.append(rng.choice(_CLOSINGS))
    # Render all parts with one state so names and amounts agree across greeting, body and sign-off.
    rendered: list[str] = []
    for part in parts:
        text = _render(part, rng, state)
        # "Hi, can you ..." not "Hi, Can you ...": lower-case a plain first word after a comma greeting.
        # Parts starting with a slot ("UPS shows ...") or with "I" keep their capital.
        if rendered and rendered[-1].endswith(",") and part[:1] != "{" and not re.match(r"I\b", text):
            text = text[:1].lower() + text[1:]
        rendered.append(text)
    text = " ".join(rendered)
    return _add_noise(rng, text)


def normalise(text: str) -> str:
    """The published duplicate rule: lower case and collapse whitespace."""
    return " ".join(text.lower().split())


def dedupe_key(text: str) -> str:
    """Stricter key used while generating: also ignores punctuation, so "where is my order?" and
    "where is my order" count as one text. Anything distinct under it is distinct under :func:`normalise`.
    """
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _generate_label(rng: random.Random, label: str, count: int, seen: set[str]) -> list[str]:
    """``count`` texts for one label, drawing templates round-robin so coverage stays even."""
    templates = [(t, False) for t in _CORE[label]] + [(t, True) for t in _TERSE[label]]
    uses = [0] * len(templates)
    texts: list[str] = []
    deck: list[int] = []
    draws = 0
    while len(texts) < count:
        draws += 1
        if draws > count * 50:
            raise RuntimeError(f"{label}: could not produce {count} distinct texts; add templates or slots")
        if not deck:
            deck = [
                i
                for i, (tpl, is_terse) in enumerate(templates)
                if "{" in tpl or uses[i] < (_SLOTLESS_TERSE_MAX_USES if is_terse else _SLOTLESS_MAX_USES)
            ]
            rng.shuffle(deck)
        idx = deck.pop()
        template, terse = templates[idx]
        for _ in range(_TRIES_PER_DRAW):
            text = _compose(rng, label, template, terse)
            key = dedupe_key(text)
            if key not in seen and len(text.split()) <= MAX_WORDS:
                seen.add(key)
                texts.append(text)
                uses[idx] += 1
                break
    return texts


def generate(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """Build all splits in memory.

    Args:
        seed: Seed for the single ``random.Random`` that drives every choice; same seed, same bytes.

    Returns:
        Split name -> list of ``{"id", "text", "label"}`` dicts, in file order.
    """
    rng = random.Random(seed)
    allocation = allocate_splits(SPLIT_SIZES, len(LABELS))

    seen: set[str] = set()
    splits: dict[str, list[dict]] = {split: [] for split in SPLIT_SIZES}
    for li, label in enumerate(LABELS):
        needed = sum(allocation[split][li] for split in SPLIT_SIZES)
        texts = _generate_label(rng, label, needed, seen)
        rng.shuffle(texts)
        start = 0
        for split in SPLIT_SIZES:
            n = allocation[split][li]
            splits[split].extend({"text": t, "label": label} for t in texts[start : start + n])
            start += n

    out: dict[str, list[dict]] = {}
    for split, rows in splits.items():
        rng.shuffle(rows)
        out[split] = [
            {"id": f"si-{split}-{i:04d}", "text": row["text"], "label": row["label"]}
            for i, row in enumerate(rows, start=1)
        ]
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
    """CLI entry point: ``python -m datagen.support_intent [--out DIR] [--seed N]``."""
    run_cli(f"Regenerate the {DATASET_NAME} dataset.", generate, DEFAULT_OUT_DIR, DEFAULT_SEED, argv)


if __name__ == "__main__":
    main()
