"""The fixed vocabulary of a synthetic world: topics, user segments, product kinds, and the
codes and time units its arrays use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsvc.contract.domain import Action, Lifecycle
from recsvc.contract.domain import ProductCategory as Cat

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
NEVER_MS = np.iinfo(np.int64).max  # the "until" of an item that does not retire
TOPICS = ("retirement", "insurance", "health", "funds", "stocks", "deposits", "credit",
          "mortgage", "markets", "literacy", "tax", "budgeting")  # fmt: skip
TOPIC_INDEX = {name: i for i, name in enumerate(TOPICS)}
LIFECYCLES = tuple(c.value for c in Lifecycle)  # codes 0..2: new, active, dormant
ACTIONS = tuple(a.value for a in Action)  # codes 0..3: impression, view, click, purchase


@dataclass(frozen=True)
class Segment:
    name: str
    share: float
    risk: tuple[float, ...]  # P(risk tolerance = 1..5)
    topics: tuple[str, ...]  # favoured topics, most favoured first
    level: float  # mean sophistication in [0, 1]
    activity: float  # multiplies the user's activity
    holdings: float  # mean number of products held before the window


SEGMENTS = (
    Segment("seasoned_hnw", 0.08, (0.02, 0.08, 0.2, 0.35, 0.35),
            ("stocks", "markets", "funds", "tax", "retirement"), 0.85, 1.4, 2.5),
    Segment("emerging_affluent", 0.17, (0.05, 0.15, 0.35, 0.3, 0.15),
            ("funds", "stocks", "mortgage", "tax", "markets"), 0.65, 1.2, 1.5),
    Segment("middle_class", 0.35, (0.15, 0.35, 0.3, 0.15, 0.05),
            ("mortgage", "deposits", "insurance", "budgeting", "credit"), 0.45, 1.0, 1.2),
    Segment("older_first_time", 0.15, (0.35, 0.35, 0.2, 0.07, 0.03),
            ("retirement", "health", "insurance", "deposits", "tax"), 0.3, 0.8, 1.0),
    Segment("beginner", 0.25, (0.3, 0.35, 0.2, 0.1, 0.05),
            ("literacy", "budgeting", "credit", "deposits", "stocks"), 0.1, 0.9, 0.3),
)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    category: Cat
    risk: tuple[float, ...]  # P(risk level = 1..5)
    topics: tuple[str, ...]
    once: bool  # holdable once
    amount: float  # median purchase amount
    names: tuple[str, ...]
    disclosure: str  # empty for credit, whose text carries its own rate


KINDS = (
    Kind(Cat.FUND, (0, 0, 0.3, 0.4, 0.3), ("funds", "stocks", "markets"), False, 1500,
         ("Global Equity Fund", "Tech Leaders Fund", "Emerging Markets Fund", "World Index Fund"),
         "Capital at risk. The value of investments can fall as well as rise."),
    Kind(Cat.DEPOSIT, (0.8, 0.2, 0, 0, 0), ("deposits", "budgeting"), False, 5000,
         ("Easy Saver", "Fixed Term Deposit", "Bonus Saver", "Notice Account"),
         "Deposits are protected up to 100,000 EUR per depositor."),
    Kind(Cat.INSURANCE, (0.5, 0.5, 0, 0, 0), ("insurance", "health"), True, 480,
         ("Health Shield", "Life Cover", "Home Protect", "Critical Illness Cover"),
         "Terms, exclusions and limits apply; read the policy document."),
    Kind(Cat.CREDIT, (0, 0.4, 0.6, 0, 0), ("credit", "mortgage", "budgeting"), True, 9000,
         ("Personal Loan", "Home Loan", "Credit Card", "Car Loan"), ""),
    Kind(Cat.WEALTH, (0, 0, 0.4, 0.6, 0), ("stocks", "markets", "tax", "funds"), False, 25000,
         ("Managed Portfolio", "Private Mandate", "Wealth Plan"),
         "Capital at risk. Fees apply; read the key information document."),
    Kind(Cat.PENSION, (0, 0.5, 0.5, 0, 0), ("retirement", "tax"), True, 2400,
         ("Pension Plan", "Retirement Saver", "Lifetime Annuity"),
         "Tax treatment depends on individual circumstances."),
)  # fmt: skip
