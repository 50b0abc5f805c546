"""The domain vocabulary shared by the service and the offline pipeline.

This is a contract module: `training` may import it, and it imports nothing heavy.
"""

from __future__ import annotations

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
