"""Deterministic generator for the shipped ``invoice-extraction`` dataset (document text -> 7-field JSON object).

Why synthetic: the data has to ship inside the repository under the project's licence, with no real company's
invoices in it, and it has to be reproducible byte for byte so that a recorded score can be traced to exactly the
documents it was computed on. So the JSONL files are an output of this script, never edited by hand, and a test
regenerates them and compares bytes.

What makes it an extraction task rather than pattern matching, and why each piece is there:

* **Seven layouts** (formal invoice, pipe/ASCII table, narrow POS receipt, e-mail body, German/EU invoice,
  compact SaaS billing notice, freelancer invoice), each with several label wordings and block orders, so a
  model cannot learn one position or one label per field.
* **Distractors** next to every field: a due date or order date next to the invoice date, a PO / customer /
  account / transaction number next to the invoice number, a subtotal (and change given, amounts per line) next
  to the total, the customer's company (or a freelancer's own name, or the POS system's name) next to the vendor.
* **Normalisation the model must do**: dates printed in several unambiguous formats (``March 5, 2024``,
  ``5 Mar 2024``, ``05.03.2024`` only in German layouts, ``2024-03-05``, ``Tue 05 Mar 2024``) become ISO dates;
  currency symbols (``$`` only ever for USD, ``CA$``/``C$``, ``A$``/``AU$``, ``€``, ``£``) or codes become ISO
  4217 codes; ``1,234.50`` / ``1.234,50`` / ``1'234.50`` / ``1234.50`` become JSON numbers; listed lines are
  counted.
* **Arithmetic that adds up**: amounts are integer cents; line amount = quantity x unit price, subtotal = sum of
  lines, net = subtotal - discount + shipping, tax = net x rate rounded half up to the cent, total = net + tax.
  Shipping and discount lines are not line items. Rates follow the seller's country (US sales tax 0/7/8.25%,
  UK VAT 20/5/0%, DE 19/7/0%, AT 20/10/0%, CH 8.1/2.6/0%, CA GST 5% / HST 13%, AU GST 10/0%, ...).

Every document is at most ``MAX_CHARS`` characters and ``MAX_TOKENS_EST`` estimated subword tokens (digits and
German words tokenize poorly, so characters alone are not enough), so that chat template + prompt + document +
answer fit a 512-token training sequence for small models. Texts are deduplicated across the whole dataset on a
lower-cased, punctuation-free, whitespace-collapsed key.

Only ``random.Random(seed)`` is used (no numpy, no set iteration, no hash-dependent order, no locale-dependent
``strftime``), so the output is identical on every platform and Python version that keeps ``random``'s
documented reproducibility.

Regenerate with::

    python -m datagen.invoice_extraction [--out DIR] [--seed 1234]
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datagen import allocate_splits, run_cli, write_splits

DATASET_NAME = "invoice-extraction"
DEFAULT_SEED = 1234
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "slmexp" / "tasks" / "data" / "invoice_extraction"

# Split name -> number of examples. Order matters: it fixes which layouts get the remainder examples.
SPLIT_SIZES: dict[str, int] = {"train": 600, "validation": 80, "test": 200}

LAYOUTS: tuple[str, ...] = (
    "formal-invoice",
    "ascii-table",
    "pos-receipt",
    "email-body",
    "german-invoice",
    "saas-notice",
    "freelancer-invoice",
)
TARGET_KEYS: tuple[str, ...] = ("vendor", "invoice_number", "date", "currency", "total", "tax", "line_items")
CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF")
MAX_CHARS = 900
MAX_LINE_ITEMS = 6
# Upper bound on :func:`estimate_tokens` per document. Calibrated on the SmolLM2 tokenizer (which splits every digit
# and most German words into 3-character pieces): the estimate undercounts by at most ~17%, so 215 keeps a document
# under ~250 real tokens, and the whole training sequence (chat template + the ~110-token prompt of
# conf/task/invoice-extraction.yaml + document + ~80-100-token answer) under 512 tokens.
MAX_TOKENS_EST = 215

# ----------------------------------------------------------------------------------------------------
# Countries: currency, tax rates (basis points), legal-form suffixes, cities, number style
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    """What a seller's country fixes: currency, plausible tax rates, company suffixes and address style."""

    code: str
    currency: str
    rates_bp: tuple[int, ...]
    tax_label: str
    suffixes: tuple[str, ...]
    cities: tuple[str, ...]
    styles: tuple[str, ...]  # number styles used by English layouts for this country


_COUNTRIES: dict[str, Country] = {
    "US": Country("US", "USD", (0, 700, 825, 825), "Sales tax", ("Inc.", "LLC", "Co."),
                  ("Austin, TX 78701", "Denver, CO 80202", "Portland, OR 97204", "Columbus, OH 43215",
                   "Raleigh, NC 27601", "Madison, WI 53703"), ("en", "plain")),
    "UK": Country("UK", "GBP", (2000, 2000, 500, 0), "VAT", ("Ltd", "LLP"),
                  ("Leeds LS1 4AP", "Bristol BS1 5TR", "Manchester M1 2JW", "Glasgow G2 8DL", "Cardiff CF10 1EP",
                   "Norwich NR2 1RQ"), ("en", "plain")),
    "IE": Country("IE", "EUR", (2300, 1350, 0), "VAT", ("Ltd",),
                  ("Dublin D02 X285", "Cork T12 RX40", "Galway H91 E2K3"), ("en",)),
    "NL": Country("NL", "EUR", (2100, 900, 0), "VAT", ("B.V.",),
                  ("1012 AB Amsterdam", "3511 LN Utrecht", "2511 CV Den Haag"), ("en",)),
    "CA": Country("CA", "CAD", (500, 1300, 1300), "GST", ("Inc.", "Ltd.", "Corp."),
                  ("Toronto, ON M5V 2T6", "Ottawa, ON K1P 5J2", "Calgary, AB T2P 1J9", "Halifax, NS B3J 1S9"),
                  ("en", "plain")),
    "AU": Country("AU", "AUD", (1000, 1000, 0), "GST", ("Pty Ltd",),
                  ("Melbourne VIC 3000", "Brisbane QLD 4000", "Perth WA 6000", "Adelaide SA 5000"), ("en", "plain")),
    "CH": Country("CH", "CHF", (810, 260, 0), "VAT", ("AG", "GmbH"),
                  ("8001 Zürich", "3011 Bern", "4051 Basel"), ("ch", "en")),
    "DE": Country("DE", "EUR", (1900, 1900, 700, 0), "MwSt.", ("GmbH", "GmbH & Co. KG", "e.K.", "UG"),
                  ("10115 Berlin", "80331 München", "20095 Hamburg", "50667 Köln", "04109 Leipzig",
                   "70173 Stuttgart"), ("de",)),
    "AT": Country("AT", "EUR", (2000, 2000, 1000, 0), "USt.", ("GmbH", "KG", "OG"),
                  ("1010 Wien", "8010 Graz", "5020 Salzburg"), ("de",)),
}
# English-language layouts draw the seller's country from here (repeats weight the draw); German ones from DE/AT/CH.
_EN_COUNTRIES = ("US", "US", "UK", "UK", "IE", "NL", "CA", "AU", "CH")
_DE_COUNTRIES = ("DE", "DE", "DE", "AT", "CH")

# Ways to mark a currency. "$" alone is only ever USD, so a symbol never has two readings.
_SYMBOLS: dict[str, tuple[str, ...]] = {
    "USD": ("$",), "GBP": ("£",), "EUR": ("€",), "CAD": ("CA$", "C$"), "AUD": ("A$", "AU$"), "CHF": (),
}  # fmt: skip

# ----------------------------------------------------------------------------------------------------
# Names (all invented; generic words, so a coincidence with a real business is possible but not intended)
# ----------------------------------------------------------------------------------------------------

_PREFIXES = (
    "Brightline", "Bluebird", "Harbourview", "Silverleaf", "Oakridge", "Redfern", "Kestrel", "Pinecrest",
    "Lumen", "Meridian", "Copperfield", "Greystone", "Ashgrove", "Riverside", "Fernhill", "Juniper",
    "Northgate", "Westbrook", "Hollybush", "Marlowe", "Sandpiper", "Thornbury", "Wrenfield", "Alderman",
    "Quayside", "Bramblewood", "Stonebridge", "Larkspur", "Coldharbour", "Elmstead", "Foxley", "Highmoor",
)  # fmt: skip
_DE_PREFIXES = (
    "Nordlicht", "Bergmann", "Alpenblick", "Lindenhof", "Sonnental", "Rheinblick", "Falkenstein", "Eichwald",
    "Kranich", "Buchenau", "Morgenrot", "Seeblick", "Hagedorn", "Weidenbach", "Sternberg", "Grünwald",
)  # fmt: skip
_FIRST = (
    "Maya", "Tom", "Priya", "Diego", "Aiko", "Olu", "Marta", "Liam", "Fatima", "Chen", "Hannah", "Raj", "Zoë",
    "Kwame", "Lars", "Ana", "Ben", "Mei", "Gareth", "Nadia", "Carlos", "Grace", "Ivan", "Aisha", "Sam", "Jordan",
)  # fmt: skip
_LAST = (
    "Lindqvist", "Okafor", "Patel", "Reyes", "Kowalski", "Haddad", "Tanaka", "Evans", "Nguyen", "Rossi",
    "Murphy", "Johansson", "Brennan", "Achebe", "Moreau", "Castillo", "Novak", "Farrell", "Sato", "Whitaker",
)  # fmt: skip
_DE_FIRST = ("Anna", "Jonas", "Lena", "Felix", "Sophie", "Lukas", "Marie", "Paul", "Clara", "Tobias")
_DE_LAST = ("Schmidt", "Wagner", "Becker", "Hoffmann", "Schulz", "Krüger", "Lehmann", "Vogel", "Brandt", "Keller")
_STREETS = (
    "Station Road", "Elm Street", "Kingsway", "Maple Avenue", "Mill Lane", "Queen Street", "Harbour Road",
    "Market Square", "Church Street", "Park View", "Canal Wharf", "Union Street",
)  # fmt: skip
_DE_STREETS = (
    "Hauptstraße", "Bahnhofstraße", "Lindenweg", "Gartenstraße", "Marktplatz", "Schillerstraße", "Am Hafen",
    "Industriestraße", "Mühlenweg", "Goethestraße",
)  # fmt: skip
# Customer organisations: the second company name on a document, a distractor for `vendor`.
_CUSTOMER_KINDS = (
    "Logistics", "Dental Practice", "Architects", "Property Management", "Marketing", "Engineering",
    "Veterinary Clinic", "Accountants", "Hotel", "Fitness Club", "Law Firm", "Primary School", "Bakery",
)  # fmt: skip
_DE_CUSTOMER_KINDS = (
    "Logistik", "Zahnarztpraxis", "Architekten", "Hausverwaltung", "Steuerberatung", "Maschinenbau",
    "Tierarztpraxis", "Hotel", "Werbeagentur", "Autohaus",
)  # fmt: skip
_SAAS_STEMS = ("Cloud", "Task", "Pipe", "Form", "Ship", "Ledger", "Note", "Sync", "Pixel", "Relay", "Queue", "Slate")
_SAAS_ENDS = ("nest", "ly", "lane", "forge", "stack", "hive", "loop", "base", "deck", "flow", "wise", "grid")
_POS_SYSTEMS = ("TillPoint POS", "Registra v4.2", "QuickTill", "CounterPro 7", "ShopDesk POS")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# ----------------------------------------------------------------------------------------------------
# Catalogues: (description, min unit price, max unit price, max quantity, unit) with unit "ea", "h" or "pp"
# ----------------------------------------------------------------------------------------------------

Item = tuple[str, int, int, int, str]

_CATALOG: dict[str, tuple[tuple[str, ...], tuple[Item, ...]]] = {
    # kind -> (business-name cores, items)
    "office": (("Office Supply", "Stationers", "Office Supplies"), (
        ("A4 copy paper (5 reams)", 18, 32, 10, "ea"), ("Black toner cartridge", 38, 95, 4, "ea"),
        ("Lever arch files (10)", 12, 25, 5, "ea"), ("Ballpoint pens, box of 50", 9, 19, 6, "ea"),
        ("Desk organiser", 14, 35, 4, "ea"), ("Whiteboard markers (4)", 4, 9, 10, "ea"),
        ("Sticky notes 76x76mm (12)", 6, 14, 8, "ea"), ("Heavy-duty stapler", 15, 42, 3, "ea"),
        ("Ergonomic mouse", 22, 60, 5, "ea"), ("Monitor riser", 25, 70, 4, "ea"),
    )),
    "it": (("IT Solutions", "Tech Services", "Computer Services"), (
        ("On-site support (hours)", 65, 140, 12, "h"), ("Remote support (hours)", 45, 110, 10, "h"),
        ("Laptop setup & imaging", 60, 150, 6, "ea"), ("24-port network switch", 180, 420, 2, "ea"),
        ("Wi-Fi access point", 95, 260, 4, "ea"), ("Backup service (monthly)", 30, 120, 1, "ea"),
        ("USB-C docking station", 110, 240, 5, "ea"), ("1TB SSD upgrade", 70, 160, 4, "ea"),
        ("Firewall configuration", 150, 480, 1, "ea"),
    )),
    "catering": (("Catering", "Kitchen", "Events Catering"), (
        ("Sandwich platter (10 ppl)", 35, 70, 6, "ea"), ("Coffee & tea service", 2, 5, 60, "pp"),
        ("Hot buffet lunch", 12, 28, 60, "pp"), ("Fruit platter", 25, 55, 4, "ea"),
        ("Pastry selection", 18, 40, 5, "ea"), ("Soft drinks (case of 24)", 14, 30, 5, "ea"),
        ("Staff & setup (hours)", 22, 38, 12, "h"),
    )),
    "print": (("Print Works", "Printing", "Print & Design"), (
        ("Business cards (500)", 25, 65, 6, "ea"), ("A5 flyers (1000)", 45, 120, 4, "ea"),
        ("Roll-up banner 85x200cm", 60, 140, 3, "ea"), ("Letterheads (250)", 30, 75, 4, "ea"),
        ("A2 posters", 6, 18, 40, "ea"), ("Presentation folders (100)", 80, 190, 3, "ea"),
        ("Artwork adjustments (hours)", 35, 70, 5, "h"),
    )),
    "cleaning": (("Cleaning Services", "Facility Care", "Cleaning Co"), (
        ("Office cleaning (weekly visit)", 60, 180, 5, "ea"), ("Window cleaning", 45, 160, 2, "ea"),
        ("Carpet deep clean (per room)", 35, 90, 8, "ea"), ("Washroom supplies", 20, 75, 3, "ea"),
        ("Kitchen deep clean", 80, 200, 2, "ea"), ("After-event clean (hours)", 25, 45, 10, "h"),
    )),
    "logistics": (("Freight", "Couriers", "Logistics"), (
        ("Pallet delivery", 45, 140, 8, "ea"), ("Same-day courier", 25, 95, 6, "ea"),
        ("Pallet storage (per week)", 6, 15, 30, "ea"), ("Packing materials", 15, 60, 3, "ea"),
        ("Two-person delivery", 60, 160, 2, "ea"), ("Waiting time (hours)", 30, 60, 4, "h"),
    )),
}
_POS_CATALOG: dict[str, tuple[tuple[str, ...], tuple[Item, ...]]] = {
    "cafe": (("Café", "Coffee House", "Espresso Bar"), (
        ("Flat white", 3, 5, 3, "ea"), ("Latte", 3, 5, 3, "ea"), ("Americano", 2, 4, 3, "ea"),
        ("Croissant", 2, 4, 4, "ea"), ("Banana bread", 2, 5, 2, "ea"), ("Bagel, cream cheese", 3, 7, 2, "ea"),
        ("Sparkling water", 1, 3, 3, "ea"), ("Pot of tea", 2, 4, 2, "ea"), ("Cappuccino", 3, 5, 3, "ea"),
        ("Blueberry muffin", 2, 4, 4, "ea"),
    )),
    "hardware": (("Hardware", "DIY Centre", "Tools & Timber"), (
        ("Wood screws 4x40 (100)", 4, 9, 4, "ea"), ("Masking tape 25mm", 2, 6, 6, "ea"),
        ("Paint roller set", 8, 19, 2, "ea"), ("Cable ties (100)", 3, 8, 3, "ea"), ("Wall plugs (50)", 2, 6, 4, "ea"),
        ("LED bulb E27", 3, 9, 8, "ea"), ("Sandpaper assorted", 4, 10, 3, "ea"), ("Tape measure 5m", 6, 15, 2, "ea"),
    )),
    "grocery": (("Market", "Grocers", "Food Hall"), (
        ("Bananas 1kg", 1, 3, 3, "ea"), ("Whole milk 2L", 1, 3, 3, "ea"), ("Sourdough loaf", 3, 6, 2, "ea"),
        ("Free-range eggs (6)", 2, 4, 3, "ea"), ("Cheddar 400g", 3, 7, 2, "ea"), ("Coffee beans 250g", 5, 11, 2, "ea"),
        ("Olive oil 500ml", 4, 10, 2, "ea"), ("Apples (6)", 2, 5, 3, "ea"),
    )),
    "books": (("Books", "Bookshop", "Booksellers"), (
        ("Paperback novel", 8, 15, 3, "ea"), ("Notebook A5", 4, 12, 4, "ea"), ("Greeting card", 2, 5, 6, "ea"),
        ("Gift wrap", 1, 4, 3, "ea"), ("Picture book", 6, 14, 2, "ea"), ("Wall calendar", 8, 16, 2, "ea"),
        ("Fountain pen", 12, 35, 1, "ea"),
    )),
}
_DE_CATALOG: dict[str, tuple[tuple[str, ...], tuple[Item, ...]]] = {
    "druck": (("Druck", "Druckerei", "Druck & Medien"), (
        ("Visitenkarten (250 Stk.)", 25, 60, 6, "ea"), ("Flyer DIN A5 (1000 Stk.)", 45, 120, 4, "ea"),
        ("Roll-up-Banner 85x200 cm", 60, 140, 3, "ea"), ("Briefpapier (500 Blatt)", 40, 90, 3, "ea"),
        ("Plakate DIN A2", 6, 18, 40, "ea"), ("Satz und Gestaltung (Std.)", 45, 85, 6, "h"),
    )),
    "buero": (("Bürobedarf", "Büroservice", "Büro & Papier"), (
        ("Kopierpapier A4, 500 Blatt", 4, 9, 20, "ea"), ("Toner schwarz", 38, 95, 4, "ea"),
        ("Ordner breit, blau", 2, 5, 20, "ea"), ("Kugelschreiber (10er-Pack)", 5, 14, 6, "ea"),
        ("Haftnotizen 76x76 mm", 1, 4, 12, "ea"), ("Schreibtischlampe LED", 25, 70, 3, "ea"),
    )),
    "it": (("IT-Service", "Systemhaus", "EDV-Service"), (
        ("Einrichtung Arbeitsplatz", 80, 180, 5, "ea"), ("Fernwartung (Std.)", 55, 110, 8, "h"),
        ("Vor-Ort-Service (Std.)", 70, 130, 10, "h"), ("Netzwerk-Switch 24 Port", 180, 420, 2, "ea"),
        ("Wartungspauschale", 90, 250, 1, "ea"), ("SSD 1 TB", 70, 160, 4, "ea"),
    )),
    "catering": (("Catering", "Partyservice", "Feinkost & Catering"), (
        ("Fingerfood-Platte", 35, 80, 5, "ea"), ("Kaffeeservice pro Person", 3, 6, 60, "pp"),
        ("Mittagsbuffet pro Person", 14, 29, 60, "pp"), ("Getränkepauschale", 40, 120, 2, "ea"),
        ("Servicepersonal (Std.)", 24, 38, 12, "h"), ("Obstplatte", 20, 45, 4, "ea"),
    )),
    "reinigung": (("Gebäudereinigung", "Reinigungsdienst", "Glas- und Gebäudereinigung"), (
        ("Unterhaltsreinigung Büro", 60, 180, 5, "ea"), ("Fensterreinigung", 45, 160, 2, "ea"),
        ("Teppichreinigung pro Raum", 35, 90, 8, "ea"), ("Grundreinigung Küche", 80, 200, 2, "ea"),
        ("Sonderreinigung (Std.)", 28, 45, 10, "h"), ("Hygieneartikel", 20, 75, 3, "ea"),
    )),
}
_SAAS_PLANS = ("Starter plan", "Team plan", "Pro plan", "Business plan", "Growth plan")
_SAAS_ADDONS: tuple[Item, ...] = (
    ("Extra storage 100 GB", 5, 20, 1, "ea"), ("Priority support", 15, 60, 1, "ea"),
    ("Additional workspace", 10, 40, 1, "ea"), ("API calls pack (10k)", 8, 30, 3, "ea"),
    ("SSO add-on", 20, 80, 1, "ea"), ("Audit log retention", 10, 35, 1, "ea"),
)
_FREELANCE: dict[str, tuple[tuple[str, ...], tuple[Item, ...]]] = {
    "design": (("Design", "Creative", "Design Studio"), (
        ("Logo concepts", 60, 95, 12, "h"), ("Brand guidelines", 60, 95, 16, "h"), ("Homepage design", 55, 90, 20, "h"),
        ("Revisions", 50, 90, 6, "h"), ("Social media templates", 150, 450, 1, "ea"),
        ("Stock image licence", 15, 60, 4, "ea"),
    )),
    "dev": (("Development", "Web Development", "Software"), (
        ("Frontend development", 70, 130, 30, "h"), ("Bug fixes", 70, 130, 8, "h"), ("Code review", 70, 130, 5, "h"),
        ("Deployment & setup", 200, 600, 1, "ea"), ("Hosting (3 months)", 30, 90, 1, "ea"),
        ("Project management", 50, 90, 6, "h"),
    )),
    "photo": (("Photography", "Photo", "Visuals"), (
        ("Event photography (day)", 450, 950, 2, "ea"), ("Photo editing", 40, 75, 10, "h"),
        ("Team headshots", 35, 70, 15, "ea"), ("Travel expenses", 20, 140, 1, "ea"),
        ("Product shots", 25, 60, 20, "ea"), ("Online gallery", 30, 80, 1, "ea"),
    )),
    "words": (("Translations", "Copywriting", "Editorial"), (
        ("Translation EN>DE (1000 words)", 90, 160, 8, "ea"), ("Proofreading", 35, 65, 10, "h"),
        ("Blog post (1,200 words)", 150, 400, 4, "ea"), ("Newsletter copy", 120, 300, 2, "ea"),
        ("Certified translation", 40, 90, 3, "ea"), ("Rush fee", 50, 150, 1, "ea"),
    )),
}

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DE_MONTHS = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
              "November", "Dezember")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE_START = dt.date(2023, 1, 1)
_DATE_SPAN_DAYS = 3 * 365

# ----------------------------------------------------------------------------------------------------
# The document model
# ----------------------------------------------------------------------------------------------------


@dataclass
class Line:
    """One line item; ``qty`` may be a half-hour multiple (then ``unit`` is a whole-currency hourly rate)."""

    desc: str
    qty: int | float
    unit: int  # cents
    kind: str = "ea"

    @property
    def amount(self) -> int:
        """Line amount in cents, exact: half quantities only occur with even unit prices."""
        return round(self.qty * 2) * self.unit // 2


@dataclass
class Invoice:
    """Everything a document states; the text is rendered from it and the target derived from it."""

    layout: str
    country: Country
    vendor: str
    invoice_number: str
    date: dt.date
    lines: list[Line]
    rate_bp: int
    style: str  # number style: "en" 1,234.50 | "de" 1.234,50 | "ch" 1'234.50 | "plain" 1234.50
    discount: int = 0  # cents, subtracted before tax
    discount_pct: int = 0  # 0 when the discount is a fixed amount
    shipping: int = 0  # cents, added before tax
    extra: dict[str, str] = field(default_factory=dict)  # distractor values and presentation choices

    @property
    def currency(self) -> str:
        return self.country.currency

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def net(self) -> int:
        return self.subtotal - self.discount + self.shipping

    @property
    def tax(self) -> int:
        """Tax in cents: net x rate, rounded half up (integers only, so no float rounding surprises)."""
        return (self.net * self.rate_bp + 5000) // 10000

    @property
    def total(self) -> int:
        return self.net + self.tax

    def target(self) -> dict:
        """The gold object, keys in the published order; amounts as JSON numbers with 2 decimals at most."""
        return {
            "vendor": self.vendor,
            "invoice_number": self.invoice_number,
            "date": self.date.isoformat(),
            "currency": self.currency,
            "total": round(self.total / 100, 2),
            "tax": round(self.tax / 100, 2),
            "line_items": len(self.lines),
        }


# ----------------------------------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------------------------------


def format_number(cents: int, style: str) -> str:
    """Amount in cents as printed in ``style``: "en" 1,234.50, "de" 1.234,50, "ch" 1'234.50, "plain" 1234.50."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if style == "en":
        body = f"{whole:,}.{frac:02d}"
    elif style == "de":
        body = f"{whole:,}".replace(",", ".") + f",{frac:02d}"
    elif style == "ch":
        body = f"{whole:,}".replace(",", "'") + f".{frac:02d}"
    elif style == "plain":
        body = f"{whole}.{frac:02d}"
    else:
        raise ValueError(style)
    return sign + body


def format_rate(rate_bp: int, style: str) -> str:
    """Tax rate as printed: "8.25%" in English layouts, "8,1 %" in German ones."""
    whole, frac = divmod(rate_bp, 100)
    text = f"{whole}" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")
    return text.replace(".", ",") + " %" if style == "de" else text + "%"


def _qty(qty: int | float, style: str) -> str:
    text = str(int(qty)) if float(qty).is_integer() else f"{qty:.1f}"
    return text.replace(".", ",") if style == "de" else text


def format_date(d: dt.date, fmt: str) -> str:
    """One of the unambiguous date renderings; locale-independent (no ``strftime``)."""
    month, de_month, wd = _MONTHS[d.month - 1], _DE_MONTHS[d.month - 1], _WEEKDAYS[d.weekday()]
    renderings = {
        "long-us": f"{month} {d.day}, {d.year}",
        "short-us": f"{month[:3]} {d.day}, {d.year}",
        "long-uk": f"{d.day} {month} {d.year}",
        "short-uk": f"{d.day} {month[:3]} {d.year}",
        "iso": d.isoformat(),
        "weekday": f"{wd} {d.day:02d} {month[:3]} {d.year}",
        "dotted": f"{d.day:02d}.{d.month:02d}.{d.year}",
        "de-long": f"{d.day}. {de_month} {d.year}",
    }
    return renderings[fmt]


_EN_DATE_FORMATS = ("long-us", "short-us", "long-uk", "short-uk", "iso", "weekday")
_DE_DATE_FORMATS = ("dotted", "dotted", "dotted", "de-long", "iso")


def _money(doc: Invoice, cents: int, mark: bool = True) -> str:
    """Amount with the document's currency marker (symbol or code, before or after) unless ``mark`` is off."""
    number = format_number(cents, doc.style)
    if not mark:
        return number
    marker, position = doc.extra["cur_marker"], doc.extra["cur_pos"]
    if position == "prefix":
        return f"{marker}{number}" if not marker.isalpha() else f"{marker} {number}"
    return f"{number} {marker}"


def _pad(left: str, right: str, width: int) -> str:
    """A receipt-style line: ``left`` then ``right`` flush to ``width`` (at least one space between)."""
    return left + " " * max(1, width - len(left) - len(right)) + right


def _table(rows: list[list[str]], right_cols: set[int], sep: str = "  ") -> list[str]:
    """Space-aligned columns; numeric columns right-aligned."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[c].rjust(widths[c]) if c in right_cols else r[c].ljust(widths[c]) for c in range(len(r))]
        out.append(sep.join(cells).rstrip())
    return out


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _initials(name: str) -> str:
    return "".join(w[0] for w in name.split()[:2] if w[0].isalpha()).upper() or "X"


def _invoice_number(rng: random.Random, layout: str, vendor: str, year: int) -> str:
    """Invoice/receipt numbers in the mixed formats real documents use. A leading ``#`` is part of the number
    (labels never end in ``#``), so "exactly as printed" has one reading."""
    n = rng.randrange(1, 10000)
    formats: dict[str, tuple[Callable[[], str], ...]] = {
        "en": (
            lambda: f"INV-{year}-{n:04d}",
            lambda: f"INV{rng.randrange(100000, 1000000)}",
            lambda: f"{_initials(vendor)}-{rng.randrange(100, 100000):05d}",
            lambda: f"{year}/{rng.randrange(1, 1000):03d}",
            lambda: f"55{_digits(rng, 8)}",
            lambda: f"#{chr(65 + rng.randrange(26))}{rng.randrange(1000, 10000)}",
        ),
        "pos": (
            lambda: f"R-{rng.randrange(1, 100000):05d}",
            lambda: f"#{chr(65 + rng.randrange(26))}{rng.randrange(1000, 10000)}",
            lambda: f"{rng.randrange(1, 10)}{_digits(rng, 9)}",
            lambda: f"RCPT-{rng.randrange(10000, 1000000)}",
        ),
        "de": (
            lambda: f"RE-{year}-{n:04d}",
            lambda: f"RE{year % 100:02d}{n:04d}",
            lambda: f"{year}/{rng.randrange(1, 1000):03d}",
            lambda: f"R-{rng.randrange(1, 100000):05d}",
            lambda: f"{n}/{year % 100:02d}",
        ),
        "saas": (
            lambda: f"#{chr(65 + rng.randrange(26))}{rng.randrange(1000, 10000)}",
            lambda: f"INV-{year}-{n:04d}",
            lambda: f"{_initials(vendor)}-{rng.randrange(16**6):06X}",
            lambda: f"{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
        ),
        "free": (
            lambda: f"{year}/{rng.randrange(1, 200):03d}",
            lambda: f"{year}-{rng.randrange(1, 200):03d}",
            lambda: f"{_initials(vendor)}-{rng.randrange(1, 1000):03d}",
            lambda: f"#{rng.randrange(1, 400):03d}",
        ),
    }
    family = {"pos-receipt": "pos", "german-invoice": "de", "saas-notice": "saas", "freelancer-invoice": "free"}
    return rng.choice(formats[family.get(layout, "en")])()


def _ref_number(rng: random.Random, kind: str) -> str:
    """A second identifier (PO, customer, order, account): the distractor for ``invoice_number``."""
    if kind == "po":
        return rng.choice((f"PO-{rng.randrange(10000, 100000)}", f"PO {rng.randrange(1000, 10000)}-{_digits(rng, 2)}",
                           f"{rng.randrange(4500000, 4600000)}"))
    if kind == "customer":
        return rng.choice((f"CUST-{rng.randrange(1, 10000):04d}", f"C{rng.randrange(10000, 100000)}",
                           f"{rng.randrange(100000, 1000000)}"))
    if kind == "order":
        return rng.choice((f"ORD-{rng.randrange(100000, 1000000)}", f"SO-{_digits(rng, 6)}"))
    return f"ACC-{rng.randrange(1, 100000):05d}"


def _price(rng: random.Random, lo: int, hi: int, kind: str) -> int:
    """Unit price in cents; hourly rates are whole amounts so half hours stay whole cents."""
    whole = rng.randrange(lo, hi + 1)
    if kind == "h" or rng.random() < 0.3:
        return whole * 100
    return whole * 100 + rng.choice((50, 99, 95, 25, 75, 49, 90))


def _lines(rng: random.Random, items: tuple[Item, ...], n: int, halves: bool = False) -> list[Line]:
    out = []
    for desc, lo, hi, qmax, kind in rng.sample(items, n):
        qty: int | float = rng.randrange(1, qmax + 1)
        if kind == "pp":
            qty = rng.randrange(6, qmax + 1)
        if kind == "h" and halves and rng.random() < 0.4:
            qty = qty + 0.5
        out.append(Line(desc, qty, _price(rng, lo, hi, kind), kind))
    return out


def _address(rng: random.Random, country: Country) -> str:
    streets = _DE_STREETS if country.code in ("DE", "AT", "CH") else _STREETS
    street = rng.choice(streets)
    number = rng.randrange(1, 200)
    line = f"{street} {number}" if country.code in ("DE", "AT", "CH", "NL") else f"{number} {street}"
    return f"{line}, {rng.choice(country.cities)}"


def _customer(rng: random.Random, german: bool, vendor: str) -> str:
    """The buyer's organisation, never equal to (or containing) the vendor's name."""
    while True:
        if german:
            name = f"{rng.choice(_DE_PREFIXES)} {rng.choice(_DE_CUSTOMER_KINDS)} {rng.choice(('GmbH', 'AG', 'KG'))}"
        elif rng.random() < 0.3:
            name = f"{rng.choice(_LAST)} & {rng.choice(_LAST)} {rng.choice(('Architects', 'Accountants', 'LLP'))}"
        else:
            name = f"{rng.choice(_PREFIXES)} {rng.choice(_CUSTOMER_KINDS)}"
        if name.split()[0] not in vendor:
            return name


def _person(rng: random.Random, german: bool = False) -> tuple[str, str]:
    if german:
        return rng.choice(_DE_FIRST), rng.choice(_DE_LAST)
    return rng.choice(_FIRST), rng.choice(_LAST)


def _email(rng: random.Random, local: str) -> str:
    local = re.sub(r"[^a-z.]", "", local.lower().replace(" ", "."))
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _phone(rng: random.Random, country: Country) -> str:
    """Numbers from ranges reserved for fiction where such ranges exist (UK 07700 900xxx, US/CA 555-01xx)."""
    if country.code == "UK":
        return f"07700 900{rng.randrange(1000):03d}"
    if country.code in ("US", "CA"):
        return f"({rng.randrange(201, 990)}) 555-01{rng.randrange(100):02d}"
    if country.code == "AU":
        return f"(03) 5550 {rng.randrange(10000):04d}"
    return f"+00 {rng.randrange(100, 1000)} {_digits(rng, 6)}"


# ----------------------------------------------------------------------------------------------------
# Building an invoice (values), then rendering it per layout (text)
# ----------------------------------------------------------------------------------------------------


def _vendor_name(rng: random.Random, layout: str, country: Country) -> tuple[str, str]:
    """(vendor name as printed, business kind) for the layout's kind of seller."""
    suffix = rng.choice(country.suffixes)
    if layout == "saas-notice":  # software companies: the country's main company form (Inc., Ltd, B.V., ...)
        return f"{rng.choice(_SAAS_STEMS)}{rng.choice(_SAAS_ENDS)} {country.suffixes[0]}", "saas"
    if layout == "german-invoice":
        kind = rng.choice(sorted(_DE_CATALOG))
        core = rng.choice(_DE_CATALOG[kind][0])
        return f"{rng.choice(_DE_PREFIXES)} {core} {suffix}", kind
    if layout == "pos-receipt":
        kind = rng.choice(sorted(_POS_CATALOG))
        core = rng.choice(_POS_CATALOG[kind][0])
        base = f"{rng.choice(_PREFIXES)} {core}"
        return (f"{base} {suffix}" if rng.random() < 0.5 else base), kind
    if layout == "freelancer-invoice":
        kind = rng.choice(sorted(_FREELANCE))
        first, last = _person(rng)
        core = rng.choice(_FREELANCE[kind][0])
        pattern = rng.randrange(3)
        if pattern == 0:
            return f"{first} {last} {core}", kind
        if pattern == 1:
            return f"{last} {core} {suffix}", kind
        return f"Studio {last}", kind
    kind = rng.choice(sorted(_CATALOG))
    return f"{rng.choice(_PREFIXES)} {rng.choice(_CATALOG[kind][0])} {suffix}", kind


def _build(rng: random.Random, layout: str, n_lines: int) -> Invoice:
    """Draw every value of one document with ``n_lines`` line items: seller, numbers, dates, lines, adjustments,
    presentation choices."""
    german = layout == "german-invoice"
    country = _COUNTRIES[rng.choice(_DE_COUNTRIES if german else _EN_COUNTRIES)]
    vendor, kind = _vendor_name(rng, layout, country)
    date = _DATE_START + dt.timedelta(days=rng.randrange(_DATE_SPAN_DAYS))

    if layout == "saas-notice":
        seats = rng.randrange(1, 40)
        plan = Line(f"{rng.choice(_SAAS_PLANS)}", seats, rng.randrange(6, 40) * 100, "seat")
        lines = [plan, *_lines(rng, _SAAS_ADDONS, n_lines - 1)]
    elif layout == "german-invoice":
        lines = _lines(rng, _DE_CATALOG[kind][1], n_lines)
    elif layout == "pos-receipt":
        lines = _lines(rng, _POS_CATALOG[kind][1], n_lines)
    elif layout == "freelancer-invoice":
        lines = _lines(rng, _FREELANCE[kind][1], n_lines, halves=True)
    else:
        lines = _lines(rng, _CATALOG[kind][1], n_lines)

    style = "de" if german and country.code != "CH" else rng.choice(country.styles)
    if german and country.code == "CH":
        style = rng.choice(("ch", "de"))
    doc = Invoice(layout=layout, country=country, vendor=vendor,
                  invoice_number=_invoice_number(rng, layout, vendor, date.year), date=date, lines=lines,
                  rate_bp=rng.choice(country.rates_bp), style=style)

    # Adjustments outside the line items (never in freelancer invoices, where expenses are line items).
    if layout in ("formal-invoice", "ascii-table", "email-body", "german-invoice", "saas-notice", "pos-receipt"):
        if rng.random() < (0.12 if layout == "pos-receipt" else 0.18):
            if rng.random() < 0.5:
                doc.discount_pct = rng.choice((5, 10, 15, 20))
                doc.discount = (doc.subtotal * doc.discount_pct + 50) // 100
            else:
                doc.discount = min(doc.subtotal // 2, rng.choice((500, 1000, 1500, 2000, 2500)))
        if layout not in ("pos-receipt", "saas-notice") and rng.random() < 0.25:
            doc.shipping = rng.choice((495, 750, 995, 1200, 1500, 2500, 3500))

    symbols = _SYMBOLS[doc.currency]
    if german:
        marker = rng.choice((*symbols, doc.currency)) if doc.currency == "EUR" else "CHF"
        doc.extra["cur_marker"], doc.extra["cur_pos"] = marker, rng.choice(("suffix", "suffix", "prefix"))
    elif symbols and rng.random() < 0.7:
        doc.extra["cur_marker"], doc.extra["cur_pos"] = rng.choice(symbols), "prefix"
    else:
        doc.extra["cur_marker"], doc.extra["cur_pos"] = doc.currency, rng.choice(("prefix", "suffix"))
    doc.extra["date_fmt"] = rng.choice(_DE_DATE_FORMATS if german else _EN_DATE_FORMATS)
    doc.extra["customer"] = _customer(rng, german, vendor)
    doc.extra["terms"] = str(rng.choice((7, 14, 14, 30, 30, 60)))
    return doc


def _tax_label(doc: Invoice) -> str:
    if doc.country.code == "CA":
        return "HST" if doc.rate_bp == 1300 else "GST"
    return doc.country.tax_label


def _tax_line(doc: Invoice, rng: random.Random) -> str:
    """The tax label with its rate, or an exemption note when the rate is 0 (the amount is printed anyway)."""
    label = _tax_label(doc)
    if doc.rate_bp:
        return f"{label} ({format_rate(doc.rate_bp, 'en')})" if rng.random() < 0.6 else \
            f"{label} {format_rate(doc.rate_bp, 'en')}"
    if doc.country.code == "US":
        return rng.choice(("Sales tax (exempt)", "Tax 0%", "Sales tax 0% (resale)"))
    return rng.choice((f"{label} 0%", f"{label} (exempt)", f"{label} 0% reverse charge", f"Zero-rated {label}"))


def _due(doc: Invoice) -> dt.date:
    return doc.date + dt.timedelta(days=int(doc.extra["terms"]))


def _issue_and_due(doc: Invoice) -> tuple[str, str]:
    """The issue and due dates, both in the document's date format."""
    fmt = doc.extra["date_fmt"]
    return format_date(doc.date, fmt), format_date(_due(doc), fmt)


def _adjustments(doc: Invoice, rng: random.Random, mark: bool = False) -> list[tuple[str, str]]:
    """(label, amount) rows for discount and shipping, in the order they apply."""
    rows = []
    if doc.discount:
        label = f"Discount {doc.discount_pct}%" if doc.discount_pct else rng.choice(("Discount", "Loyalty credit"))
        rows.append((label, _money(doc, -doc.discount, mark)))
    if doc.shipping:
        rows.append((rng.choice(("Shipping", "Delivery", "Shipping & handling")), _money(doc, doc.shipping, mark)))
    return rows


# --- formal invoice ---------------------------------------------------------------------------------


def _render_formal(doc: Invoice, rng: random.Random, compact: int) -> str:
    date_s, due_s = _issue_and_due(doc)
    first, last = _person(rng)
    header = [doc.vendor]
    if compact < 2:
        header.append(_address(rng, doc.country))
    if compact < 1:
        header.append(f"{_phone(rng, doc.country)} | {_email(rng, 'accounts')}")
    title = rng.choice(("INVOICE", "Invoice", "TAX INVOICE" if doc.country.code == "AU" else "INVOICE"))
    ref_kind = rng.choice(("po", "customer", "order"))
    ref_label = {"po": rng.choice(("PO Number", "Your PO", "Purchase order")),
                 "customer": rng.choice(("Customer No.", "Customer ID", "Account No.")),
                 "order": rng.choice(("Order No.", "Sales order"))}[ref_kind]
    no_label = rng.choice(("Invoice No.", "Invoice Number", "Invoice no", "Inv. No.", "Number"))
    meta = [
        (no_label, doc.invoice_number),
        (rng.choice(("Invoice Date", "Date", "Date of issue", "Issue date")), date_s),
        (rng.choice(("Due Date", "Payment due", "Due")), due_s),
        (ref_label, _ref_number(rng, ref_kind)),
    ]
    if rng.random() < 0.5:
        meta[2], meta[3] = meta[3], meta[2]
    width = max(len(k) for k, _ in meta) + 2
    meta_lines = [f"{k + ':':<{width}}{v}" for k, v in meta]
    bill = [rng.choice(("Bill To:", "Billed to:", "Customer:")), doc.extra["customer"]]
    if compact < 2:
        bill.append(f"Attn: {first} {last}")
    mark_rows = rng.random() < 0.3
    rows = [["Description", "Qty", "Unit Price", "Amount"]]
    rows += [[ln.desc, _qty(ln.qty, doc.style), _money(doc, ln.unit, mark_rows), _money(doc, ln.amount, mark_rows)]
             for ln in doc.lines]
    if compact >= 2:  # the amount column alone still states each line; the unit price is the first thing to go
        rows = [[r[0], r[1], r[3]] for r in rows]
    table = _table(rows, set(range(1, len(rows[0]))))
    sums = [(rng.choice(("Subtotal", "Sub-total", "Net amount")), _money(doc, doc.subtotal, mark_rows))]
    sums += _adjustments(doc, rng, mark_rows)
    sums.append((_tax_line(doc, rng), _money(doc, doc.tax, mark_rows)))
    sums.append((rng.choice(("Total", "Total Due", "Amount Due", "TOTAL", "Balance Due", "Invoice Total")),
                 _money(doc, doc.total)))
    lw = max(len(k) for k, _ in sums) + 1
    vw = max(len(v) for _, v in sums)
    sum_lines = [f"{k + ':':<{lw}} {v:>{vw}}".rjust(len(table[0])) for k, v in sums]
    footer = []
    if compact < 1:
        footer.append(rng.choice((f"Payment terms: Net {doc.extra['terms']}. Please quote the invoice number.",
                                  "Thank you for your business.", f"Please pay within {doc.extra['terms']} days.")))
    blocks = [header, [title, *meta_lines], bill] if rng.random() < 0.6 else [header, bill, [title, *meta_lines]]
    if not mark_rows and rng.random() < 0.3:
        table.insert(0, f"All amounts in {doc.currency}")
    blocks += [table, sum_lines]
    if footer:
        blocks.append(footer)
    return "\n\n".join("\n".join(b) for b in blocks)


# --- pipe / ASCII table ------------------------------------------------------------------------------


def _render_ascii(doc: Invoice, rng: random.Random, compact: int) -> str:
    fmt = doc.extra["date_fmt"]
    ref = _ref_number(rng, "customer")
    lines = [f"{doc.vendor} | Invoice {doc.invoice_number}"]
    lines.append(f"Date: {format_date(doc.date, fmt)} | Due: {format_date(_due(doc), fmt)} | Customer ID: {ref}")
    lines.append(f"Customer: {doc.extra['customer']}")
    rows = [["#", "Item", "Qty", "Price", "Total"]]
    rows += [[str(i), ln.desc, _qty(ln.qty, doc.style), _money(doc, ln.unit, False), _money(doc, ln.amount, False)]
             for i, ln in enumerate(doc.lines, start=1)]
    right = {0, 2, 3, 4}
    if compact >= 2:
        rows = [[r[1], r[2], r[4]] for r in rows]
        right = {1, 2}
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    boxed = rng.random() < 0.5 and compact == 0
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    body = [row(rows[0])]
    if boxed:
        body = [rule, row(rows[0]), rule]
    else:
        body.append("|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                   for i, w in enumerate(widths)) + "|")
    body += [row(r) for r in rows[1:]]
    if boxed:
        body.append(rule)
    lines += [f"Currency: {doc.currency}"] if doc.extra["cur_marker"] == doc.currency or rng.random() < 0.5 else []
    lines += body
    sums = [("Subtotal", _money(doc, doc.subtotal, False)), *_adjustments(doc, rng)]
    sums.append((_tax_line(doc, rng), _money(doc, doc.tax, False)))
    sums.append((rng.choice(("TOTAL", "Total due", "Grand total", "Amount payable")), _money(doc, doc.total)))
    sep = rng.choice((": ", " | ", "  "))
    lines += [f"{k}{sep}{v}" for k, v in sums]
    if compact == 0 and rng.random() < 0.5:
        lines.append(f"Terms: {doc.extra['terms']} days. Ref {_ref_number(rng, 'order')}")
    return "\n".join(lines)


# --- POS receipt -------------------------------------------------------------------------------------


def _render_pos(doc: Invoice, rng: random.Random, compact: int) -> str:
    width = rng.choice((32, 36, 40))
    rule = rng.choice(("-", "=", "*")) * width
    first, _ = _person(rng)
    out = [doc.vendor.center(width).rstrip()]
    if compact < 2:
        out.append(_address(rng, doc.country).center(width).rstrip())
    if compact < 1 and doc.country.code in ("UK", "IE", "NL") and rng.random() < 0.6:
        out.append(f"VAT No. {doc.country.code.replace('UK', 'GB')}{_digits(rng, 9)}".center(width).rstrip())
    out.append(rule)
    no_label = rng.choice(("Receipt", "Receipt no.", "Rcpt", "Trans", "Bill no."))
    no_label = f"{no_label} " if doc.invoice_number.startswith("#") else f"{no_label}: "
    out.append(_pad(f"{no_label}{doc.invoice_number}", f"Till {rng.randrange(1, 9)}", width))
    out.append(_pad(f"Cashier: {first}", f"Store {rng.randrange(100, 999)}", width))
    date_s = format_date(doc.date, rng.choice(("iso", "weekday", "short-uk", "short-us")))
    hour, minute = rng.randrange(7, 21), rng.randrange(60)
    out.append(f"{date_s}  {hour:02d}:{minute:02d}")
    out.append(rule)
    for ln in doc.lines:
        amount = _money(doc, ln.amount, False)
        if ln.qty == 1:
            out.append(_pad(ln.desc, amount, width))
        elif rng.random() < 0.5:
            out.append(_pad(f"{_qty(ln.qty, doc.style)} x {ln.desc}", amount, width))
        else:
            out.append(ln.desc)
            out.append(_pad(f"  {_qty(ln.qty, doc.style)} @ {_money(doc, ln.unit, False)}", amount, width))
    out.append(rule)
    out.append(_pad("SUBTOTAL", _money(doc, doc.subtotal, False), width))
    if doc.discount:
        label = f"DISCOUNT {doc.discount_pct}%" if doc.discount_pct else "MEMBER DISCOUNT"
        out.append(_pad(label, _money(doc, -doc.discount, False), width))
    tax_label = _tax_label(doc).upper().rstrip(".")
    tax_label = f"{tax_label} {format_rate(doc.rate_bp, 'en')}" if doc.rate_bp else f"{tax_label} EXEMPT"
    out.append(_pad(tax_label, _money(doc, doc.tax, False), width))
    out.append(_pad("TOTAL", _money(doc, doc.total), width))
    if rng.random() < 0.5:
        paid = (doc.total // 500 + 1) * 500 if doc.total % 500 else doc.total
        paid = paid + rng.choice((0, 0, 1000, 2000))
        out.append(_pad("CASH", _money(doc, paid, False), width))
        out.append(_pad("CHANGE", _money(doc, paid - doc.total, False), width))
    else:
        card = rng.choice(("VISA", "MASTERCARD", "AMEX", "DEBIT"))
        out.append(_pad(f"{card} ****{_digits(rng, 4)}", _money(doc, doc.total, False), width))
        if compact < 1:
            out.append(f"AUTH {_digits(rng, 6)}")
    out.append(rule)
    if compact < 2:
        out.append(rng.choice(("Thank you for your visit!", "Thank you, come again", "Keep receipt for returns"))
                   .center(width).rstrip())
    if compact < 1 and rng.random() < 0.5:
        out.append(rng.choice(_POS_SYSTEMS).center(width).rstrip())
    return "\n".join(out)


# --- e-mail body -------------------------------------------------------------------------------------


def _render_email(doc: Invoice, rng: random.Random, compact: int) -> str:
    date_s, due_s = _issue_and_due(doc)
    c_first, _ = _person(rng)
    s_first, s_last = _person(rng)
    po = _ref_number(rng, "po")
    out = []
    if compact < 2:
        out.append(f"Subject: Invoice {doc.invoice_number} from {doc.vendor}")
        out.append("")
    out.append(rng.choice((f"Hi {c_first},", f"Dear {c_first},", "Hello,", "Hi,", f"Good morning {c_first},")))
    out.append("")
    opener = rng.choice((
        f"Please find our invoice {doc.invoice_number} dated {date_s} for your order {po}.",
        f"Attached is invoice {doc.invoice_number} ({date_s}) for {doc.extra['customer']}, your ref. {po}.",
        f"Thanks for your order {po}. Our invoice {doc.invoice_number}, issued {date_s}, is summarised below.",
        f"As promised, here is invoice {doc.invoice_number} dated {date_s} (your ref. {po}).",
    ))
    out.append(opener)
    out.append("")
    for ln in doc.lines:
        q = _qty(ln.qty, doc.style)
        price = _money(doc, ln.unit)
        amount = _money(doc, ln.amount)
        if ln.qty == 1:
            out.append(f"- {ln.desc}: {amount}")
        else:
            out.append(f"- {q} x {ln.desc} = {amount}" if compact >= 2 else f"- {q} x {ln.desc} @ {price} = {amount}")
    out.append("")
    out.append(f"Subtotal: {_money(doc, doc.subtotal)}")
    out += [f"{k}: {v}" for k, v in _adjustments(doc, rng, True)]
    out.append(f"{_tax_line(doc, rng)}: {_money(doc, doc.tax)}")
    out.append(rng.choice((
        f"Amount due: {_money(doc, doc.total)} by {due_s}.",
        f"Total due: {_money(doc, doc.total)}, payable by {due_s}.",
        f"The total of {_money(doc, doc.total)} is due on {due_s}.",
    )))
    out.append("")
    if compact < 1:
        out.append(rng.choice(("Bank details are on the attached PDF.", "Let me know if you have any questions.",
                               "Payment by bank transfer, please quote the invoice number.")))
        out.append("")
    out.append(rng.choice(("Kind regards,", "Best,", "Many thanks,", "Regards,")))
    out.append(f"{s_first} {s_last}")
    out.append(f"Accounts, {doc.vendor}")
    return "\n".join(out)


# --- German / EU invoice -----------------------------------------------------------------------------


def _render_german(doc: Invoice, rng: random.Random, compact: int) -> str:
    fmt = doc.extra["date_fmt"]
    date_s, due_s = _issue_and_due(doc)
    order_date = doc.date - dt.timedelta(days=rng.randrange(2, 20))
    first, last = _person(rng, german=True)
    sep = rng.choice((" · ", " | ", ", "))
    out = [f"{doc.vendor}{sep}{_address(rng, doc.country).replace(', ', sep)}" if compact < 2 else doc.vendor, ""]
    out.append(doc.extra["customer"])
    if compact < 1:
        out.append(f"z. Hd. {rng.choice(('Frau', 'Herrn'))} {first} {last}")
        out.append(_address(rng, doc.country))
    out.append("")
    out.append(rng.choice(("RECHNUNG", "Rechnung")))
    meta = [
        (rng.choice(("Rechnungsnr.", "Rechnungsnummer", "Rechnung Nr.", "Beleg-Nr.")), doc.invoice_number),
        (rng.choice(("Rechnungsdatum", "Datum")), date_s),
        (rng.choice(("Kundennr.", "Kunden-Nr.")), _ref_number(rng, "customer").replace("CUST-", "K")),
    ]
    if rng.random() < 0.6:
        meta.append(("Ihre Bestellung", f"{_ref_number(rng, 'po')} vom {format_date(order_date, fmt)}"))
    if compact < 1 and rng.random() < 0.5:
        meta.append(("Leistungsdatum", format_date(doc.date - dt.timedelta(days=rng.randrange(1, 6)), fmt)))
    width = max(len(k) for k, _ in meta) + 2
    out += [f"{k + ':':<{width}}{v}" for k, v in meta]
    out.append("")
    mark_rows = rng.random() < 0.4
    rows = [["Pos.", "Bezeichnung", "Menge", "Einzelpreis", "Gesamt"]]
    rows += [[str(i), ln.desc, _qty(ln.qty, doc.style), _money(doc, ln.unit, mark_rows),
              _money(doc, ln.amount, mark_rows)] for i, ln in enumerate(doc.lines, start=1)]
    if compact >= 2:
        rows = [[r[1], r[2], r[4]] for r in rows]
    out += _table(rows, set(range(len(rows[0]) - 3, len(rows[0]))))
    out.append("")
    sums = [(rng.choice(("Zwischensumme", "Summe netto", "Nettobetrag")), _money(doc, doc.subtotal))]
    if doc.discount:
        sums.append((f"Rabatt {doc.discount_pct} %" if doc.discount_pct else "Rabatt", _money(doc, -doc.discount)))
    if doc.shipping:
        sums.append((rng.choice(("Versandkosten", "Versand")), _money(doc, doc.shipping)))
    label = "MWST" if doc.country.code == "CH" else rng.choice(("MwSt.", "USt.", "Umsatzsteuer"))
    if doc.rate_bp:
        tax_label = f"zzgl. {format_rate(doc.rate_bp, 'de')} {label}"
    else:
        tax_label = rng.choice((f"{label} 0 % (Reverse-Charge)", f"{label} 0 % (steuerfrei)"))
    sums.append((tax_label, _money(doc, doc.tax)))
    sums.append((rng.choice(("Rechnungsbetrag", "Gesamtbetrag", "Endbetrag", "Summe brutto")), _money(doc, doc.total)))
    lw = max(len(k) for k, _ in sums) + 1
    vw = max(len(v) for _, v in sums)
    out += [f"{k + ':':<{lw}} {v:>{vw}}" for k, v in sums]
    out.append("")
    out.append(rng.choice((f"Zahlbar bis {due_s} ohne Abzug.", f"Zahlungsziel: {due_s}",
                           f"Bitte überweisen Sie den Betrag bis zum {due_s}.")))
    if compact < 1:
        vat_id = {"DE": "DE", "AT": "ATU", "CH": "CHE-"}[doc.country.code] + _digits(rng, 9)
        out.append(f"USt-IdNr.: {vat_id}")
    return "\n".join(out)


# --- SaaS billing notice -----------------------------------------------------------------------------


def _render_saas(doc: Invoice, rng: random.Random, compact: int) -> str:
    fmt = doc.extra["date_fmt"]
    date_s = format_date(doc.date, fmt)
    next_s = format_date(doc.date + dt.timedelta(days=rng.choice((30, 31, 365))), fmt)
    plan = doc.lines[0]
    charges = [f"{plan.desc} × {plan.qty} seats @ {_money(doc, plan.unit)} = {_money(doc, plan.amount)}"
               if plan.qty > 1 else f"{plan.desc} (1 seat) {_money(doc, plan.amount)}"]
    charges += [f"{ln.desc} {_money(doc, ln.amount)}" if ln.qty == 1 else
                f"{ln.desc} × {ln.qty} {_money(doc, ln.amount)}" for ln in doc.lines[1:]]
    charge_s = " + ".join(charges)
    promo = f"; promo {rng.choice(('SAVE10', 'LAUNCH', 'ANNUAL'))} {_money(doc, -doc.discount)}" if doc.discount else ""
    tax_s = f"{_tax_line(doc, rng)} {_money(doc, doc.tax)}"
    card = f"{rng.choice(('Visa', 'Mastercard', 'Amex'))} ending {_digits(rng, 4)}"
    account = _ref_number(rng, "account")
    variant = rng.randrange(3)
    if variant == 0:
        return (f"{doc.vendor} — Receipt {doc.invoice_number} — {date_s}\n"
                f"{charge_s}{promo}; subtotal {_money(doc, doc.subtotal)}; {tax_s}; total charged "
                f"{_money(doc, doc.total)} to {card}. Next billing date: {next_s}. Account {account}.")
    if variant == 1:
        return (f"Your {doc.vendor} invoice {doc.invoice_number} (issued {date_s}) is ready. Workspace: "
                f"{doc.extra['customer']} ({account}). Charges: {charge_s}{promo}. Subtotal "
                f"{_money(doc, doc.subtotal)}, {tax_s}, amount due {_money(doc, doc.total)}. Renews {next_s}.")
    return (f"Payment received - thank you! {doc.vendor} | invoice no. {doc.invoice_number} | {date_s} | "
            f"{charge_s}{promo} | subtotal {_money(doc, doc.subtotal)} | {tax_s} | TOTAL {_money(doc, doc.total)} "
            f"| paid with {card} | next invoice {next_s}")


# --- freelancer invoice ------------------------------------------------------------------------------


def _render_freelancer(doc: Invoice, rng: random.Random, compact: int) -> str:
    date_s, due_s = _issue_and_due(doc)
    c_first, c_last = _person(rng)
    owner_first, owner_last = _person(rng)
    if doc.vendor.split()[0] in _FIRST:  # "Maya Lindqvist Design" is run by Maya Lindqvist
        owner_first, owner_last = doc.vendor.split()[:2]
    elif doc.vendor.split()[-1] in _LAST:  # "Studio Okafor"
        owner_last = doc.vendor.split()[-1]
    elif doc.vendor.split()[0] in _LAST:  # "Okafor Design Ltd"
        owner_last = doc.vendor.split()[0]
    title = f"INVOICE {doc.invoice_number}" if doc.invoice_number.startswith("#") else \
        f"INVOICE No. {doc.invoice_number}"
    out = [title, ""]
    out.append(f"From: {doc.vendor}")
    if compact < 2:
        out.append(f"{owner_first} {owner_last} · {_email(rng, owner_first)}")
    out.append(f"To: {doc.extra['customer']}, attn. {c_first} {c_last}")
    out.append(f"Date: {date_s}")
    out.append(f"Payment due: {due_s} ({doc.extra['terms']} days)")
    if compact < 1:
        out.append(f"Project: {rng.choice(('Website refresh', 'Spring campaign', 'Annual report', 'Product launch'))}"
                   f" (ref. P-{rng.randrange(1000, 10000)})")
    out.append("")
    out.append(rng.choice(("Services:", "Work completed:", "Details:")))
    for i, ln in enumerate(doc.lines, start=1):
        qty = f"{_qty(ln.qty, doc.style)} h" if ln.kind == "h" else _qty(ln.qty, doc.style)
        unit = "" if compact >= 2 else f" @ {_money(doc, ln.unit, False)}"
        out.append(f"{i}. {ln.desc} — {qty}{unit} = {_money(doc, ln.amount, False)}")
    out.append("")
    out.append(f"Subtotal: {_money(doc, doc.subtotal, False)}")
    if doc.rate_bp:
        out.append(f"{_tax_label(doc)} {format_rate(doc.rate_bp, 'en')}: {_money(doc, doc.tax, False)}")
    else:
        out.append(rng.choice((f"Tax: 0% (not {_tax_label(doc)} registered) {_money(doc, doc.tax, False)}",
                               f"{_tax_label(doc)}: {_money(doc, doc.tax, False)} (exempt)")))
    out.append(f"TOTAL DUE ({doc.currency}): {_money(doc, doc.total)}" if rng.random() < 0.5 else
               f"Total due: {_money(doc, doc.total)}")
    if compact < 1:
        out.append("")
        out.append(rng.choice(("Thank you!", "Please pay by bank transfer. Thanks!", "Cheers, and thanks again.")))
    return "\n".join(out)


# Most line items per layout: what fits the token budget with the layout's other blocks (a SaaS notice lists a
# plan and at most two add-ons).
_MAX_LINES: dict[str, int] = {
    "formal-invoice": 5, "ascii-table": 4, "pos-receipt": 6, "email-body": 5, "german-invoice": 3,
    "saas-notice": 3, "freelancer-invoice": 5,
}  # fmt: skip

_RENDERERS: dict[str, Callable[[Invoice, random.Random, int], str]] = {
    "formal-invoice": _render_formal,
    "ascii-table": _render_ascii,
    "pos-receipt": _render_pos,
    "email-body": _render_email,
    "german-invoice": _render_german,
    "saas-notice": _render_saas,
    "freelancer-invoice": _render_freelancer,
}


def _currency_shown(doc: Invoice, text: str) -> bool:
    """The document must name its currency unambiguously somewhere (code, or a symbol that maps to one code)."""
    if doc.currency in text:
        return True
    return any(sym in text for sym in _SYMBOLS[doc.currency] if sym != "$") or (
        doc.currency == "USD" and re.search(r"(?<![A-Z])\$", text) is not None)


def _make(rng: random.Random, layout: str) -> tuple[Invoice, str]:
    """One document within ``MAX_CHARS`` and ``MAX_TOKENS_EST``: drop cosmetic blocks first (compact levels),
    redraw with the same number of line items next, and only then try one line item fewer."""
    n_lines = rng.randrange(1, _MAX_LINES[layout] + 1)
    for attempt in range(100):
        if attempt and attempt % 20 == 0:
            n_lines = max(1, n_lines - 1)
        doc = _build(rng, layout, n_lines)
        for compact in range(3):
            text = _RENDERERS[layout](doc, rng, compact)
            text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
            if not _currency_shown(doc, text):
                text += f"\nAll amounts in {doc.currency}."
            if len(text) <= MAX_CHARS and estimate_tokens(text) <= MAX_TOKENS_EST:
                return doc, text
    raise RuntimeError(f"{layout}: could not fit a document into {MAX_CHARS} characters")


_PRETOKEN_RE = re.compile(r" ?[^\W\d_]+| ?\d|[^\w\s]+| ?[^\w\s]+|\s+")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free, deterministic estimate of the document's length in subword tokens.

    Byte-level BPE tokenizers of small models split digits one by one, long or capitalised words into short
    pieces and non-ASCII letters into extra bytes; character counts alone therefore misjudge number-heavy tables
    and German text by a factor of two. This counts: 1 per digit, 1 per whitespace run, 1 per 3 letters of a word
    (1 per 2 for all-caps words), +1 per non-ASCII letter, 1 per 4 punctuation characters.
    """
    n = 0
    for raw in _PRETOKEN_RE.findall(text):
        piece = raw.strip()
        if not piece or piece[0].isdigit():
            n += 1
        elif piece[0].isalpha():
            n += -(-len(piece) // (2 if len(piece) > 3 and piece.isupper() else 3))
            if not piece.isascii():
                n += sum(not c.isascii() for c in piece)
        else:
            n += -(-len(piece) // 4)
    return n


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed: the looser duplicate rule."""
    return " ".join(text.lower().split())


def dedupe_key(text: str) -> str:
    """The published duplicate key: lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def generate_documents(seed: int = DEFAULT_SEED) -> dict[str, list[tuple[Invoice, str]]]:
    """Build all splits as (invoice values, rendered text) pairs, in file order.

    Exposed so that tests can check the arithmetic (subtotal, discount, shipping, rate) that the published row,
    which keeps only the 7 target fields, does not carry.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    out: dict[str, list[tuple[Invoice, str]]] = {}
    allocation = allocate_splits(SPLIT_SIZES, len(LAYOUTS))
    for split in SPLIT_SIZES:
        plan = [layout for layout, n in zip(LAYOUTS, allocation[split], strict=True) for _ in range(n)]
        rng.shuffle(plan)
        docs: list[tuple[Invoice, str]] = []
        for layout in plan:
            for _ in range(100):
                doc, text = _make(rng, layout)
                key = dedupe_key(text)
                if key not in seen:
                    seen.add(key)
                    docs.append((doc, text))
                    break
            else:
                raise RuntimeError(f"{layout}: could not produce a new distinct document")
        out[split] = docs
    return out


def generate(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """Build all splits in memory.

    Args:
        seed: Seed for the single ``random.Random`` that drives every choice; same seed, same bytes.

    Returns:
        Split name -> list of ``{"id", "text", "target", "layout"}`` dicts, in file order.
    """
    return {
        split: [
            {"id": f"inv-{split}-{i:04d}", "text": text, "target": doc.target(), "layout": doc.layout}
            for i, (doc, text) in enumerate(docs, start=1)
        ]
        for split, docs in generate_documents(seed).items()
    }


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
    """CLI entry point: ``python -m datagen.invoice_extraction [--out DIR] [--seed N]``."""
    run_cli(f"Regenerate the {DATASET_NAME} dataset.", generate, DEFAULT_OUT_DIR, DEFAULT_SEED, argv)


if __name__ == "__main__":
    main()
