"""The domain vocabulary shared by the service and the offline pipeline.

This is a contract module: `training` may import it, and it imports nothing heavy.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from pydantic import BeforeValidator


class ItemType(StrEnum):
    VIDEO = "video"
    PRODUCT = "product"


class Action(StrEnum):
    IMPRESSION = "impression"
    VIEW = "view"
    CLICK = "click"
    PURCHASE = "purchase"


class Lifecycle(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    DORMANT = "dormant"


class ItemStatus(StrEnum):
    LIVE = "live"
    RETIRED = "retired"


class ProductCategory(StrEnum):
    DEPOSIT = "deposit"
    WEALTH = "wealth"
    FUND = "fund"
    INSURANCE = "insurance"
    CREDIT = "credit"
    PENSION = "pension"


# A product of these categories is never attached without its disclosure text
# (for credit: the annual rate).
DISCLOSURE_REQUIRED: frozenset[ProductCategory] = frozenset({ProductCategory.CREDIT})

RISK_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

# Display text: what a user may be shown (product names and disclosures, video titles). It is
# NFC-normalised and stripped of surrounding whitespace, and holds no character of these
# Unicode categories (as the Python runtime's Unicode version assigns them), nor any of the
# INVISIBLE code points. A disclosure is display text with at least MIN_DISCLOSURE_ALNUM
# letters or digits: "-", "." or a zero-width space satisfy no disclosure rule.
REFUSED_CATEGORIES: dict[str, str] = {
    "Cc": "a control character",  # C0 and C1, tab and newlines included
    "Cf": "a format character",  # zero-width, soft hyphen, bidi overrides and isolates
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
# Default-ignorable code points of other categories: they render as nothing (Hangul fillers
# are letters; the grapheme joiner and the variation selectors are marks).
INVISIBLE: frozenset[int] = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}  # 2800: braille blank
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)
MIN_DISCLOSURE_ALNUM = 2


def display_text(value: str) -> str:
    """`value` fit to show a user: NFC, stripped; ValueError naming the first character that
    is not (see REFUSED_CATEGORIES and INVISIBLE)."""
    text = unicodedata.normalize("NFC", value)
    for char in text:
        kind = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is None and ord(char) in INVISIBLE:
            kind = "an invisible character"
        if kind is not None:
            raise ValueError(
                f"holds U+{ord(char):04X}, {kind}: display text may hold no control, format, "
                "invisible, private-use or unassigned character"
            )
    text = text.strip()
    if not any(char.isalnum() for char in text):  # "-", " . ", marks or emoji alone
        raise ValueError("holds no letter or digit: display text must say something")
    return text


def disclosure_text(value: str) -> str:
    """`value` as a disclosure: display text with at least MIN_DISCLOSURE_ALNUM letters or
    digits; ValueError saying why not."""
    text = display_text(value)
    found = sum(char.isalnum() for char in text)
    if found < MIN_DISCLOSURE_ALNUM:
        raise ValueError(
            f"not a disclosure: it holds {found} letters or digits, at least "
            f"{MIN_DISCLOSURE_ALNUM} are needed (send null for no disclosure)"
        )
    return text


def is_disclosure(value: str | None) -> bool:
    """Whether `value` satisfies a disclosure rule (see disclosure_text)."""
    if value is None:
        return False
    try:
        disclosure_text(value)
    except ValueError:
        return False
    return True


# A view's watch ratio is the time watched over the video's duration: above 1 when the video
# was replayed (real feed logs have them: about 14% of KuaiRand's rows). Above this ceiling a
# value is not a replay but a unit mix-up (seconds for a ratio, a percentage): bad data.
WATCH_RATIO_MAX = 100.0

# Columns of an event, in order. Optional ones may be null.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "user_id",
    "item_id",
    "item_type",
    "action",
    "watch_ratio",
    "request_id",
    "amount",
)
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "user_id",
    "item_id",
    "item_type",
    "action",
)

# A surface of the app (where feeds are shown: recsvc.feed.placement) as feeds and events name
# it, and the furthest position on a page an event may name.
SURFACE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_POSITION = 1000

# Identifiers (users, videos, products, events, requests) as the service accepts them: a
# letter or digit, then letters, digits and `_ . : -`, at most 64 characters. Braces are
# excluded on purpose: they delimit Redis Cluster hash tags in the key layout.
MAX_ID_LENGTH = 64
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


def not_a_bool(value: object) -> object:
    """For pydantic's BeforeValidator on numbers: JSON true/false is not a number (pydantic
    would read it as 1/0, so a buggy client's `"amount": false` would pass as 0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


NotABool = BeforeValidator(not_a_bool)  # Annotated[float, NotABool]
