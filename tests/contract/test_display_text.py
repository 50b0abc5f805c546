"""What a user may be shown (recsvc.contract.domain.display_text): NFC, stripped, and no control,
format (zero-width, bidi override or isolate), invisible, private-use or unassigned
character; a disclosure also holds at least two letters or digits. The catalogue records
apply it to names, disclosures and titles, and the attach rule uses the same notion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import ItemStatus, ProductCategory, display_text, is_disclosure

INVISIBLE_OR_CONTROL = [
    "\u200b",  # zero width space
    "\u200d",  # zero width joiner
    "\ufeff",  # zero width no-break space
    "\u00ad",  # soft hyphen
    "\u2060",  # word joiner
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u2069",  # pop directional isolate
    "\x00",
    "\x07",
    "\t",
    "\n",
    "\x85",  # C1 next line
    "\u2028",  # line separator
    "\ue000",  # private use
    "\u0378",  # unassigned
    "\u3164",  # hangul filler: a letter that renders as nothing
    "\ufe0f",  # variation selector
    "\u2800",  # braille pattern blank: renders as nothing
]
CREDIT = {"product_id": "p-loan", "name": "Flex Loan", "category": "credit", "risk_level": 2}


@pytest.mark.parametrize("char", INVISIBLE_OR_CONTROL)
def test_display_text_refuses_control_format_and_invisible_characters(char: str) -> None:
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        display_text(f"APR{char} 9.9%")


def test_display_text_is_nfc_and_stripped() -> None:
    assert display_text("  Cafe\u0301 Saver ") == "Caf\u00e9 Saver"
    assert display_text("Épargne 3,5 % — 10 000 €") == "Épargne 3,5 % — 10 000 €"


@pytest.mark.parametrize("text", ["-", " . ", "\u0301\u0301", "\U0001f4b0", "\u2800"])
def test_display_text_that_looks_blank_or_says_nothing_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        display_text(text)


@pytest.mark.parametrize("name", ["Flex Loan", "Fund 2030", "€ Savings", "Épargne+"])
def test_names_with_letters_or_digits_are_display_text(name: str) -> None:
    assert display_text(name) == name


@pytest.mark.parametrize("text", ["-", ".", "%", " - ", "A", "\u00a0.\u00a0"])
def test_a_disclosure_needs_two_letters_or_digits(text: str) -> None:
    assert not is_disclosure(text)
    with pytest.raises(ValidationError) as refused:
        ProductRecord.model_validate({**CREDIT, "disclosure": text})
    assert refused.value.errors()[0]["loc"] == ("disclosure",)


@pytest.mark.parametrize("char", ["\u200b", "\x00", "\u202e"])
@pytest.mark.parametrize("field", ["name", "disclosure"])
def test_a_product_record_refuses_invisible_text_naming_the_field(char: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProductRecord.model_validate({**CREDIT, "disclosure": "APR 9.9%", field: f"X{char}Y"})
    assert refused.value.errors()[0]["loc"] == (field,)


def test_a_video_title_is_display_text() -> None:
    with pytest.raises(ValidationError) as refused:
        VideoRecord.model_validate({"video_id": "v1", "title": "Budgeting \u202e101"})
    assert refused.value.errors()[0]["loc"] == ("title",)


def test_no_disclosure_is_none_and_a_good_one_is_attachable() -> None:
    assert ProductRecord.model_validate({**CREDIT, "disclosure": "  "}).disclosure is None
    assert not ProductRecord.model_validate(CREDIT).attachable
    good = ProductRecord.model_validate({**CREDIT, "disclosure": " APR 9.9% "})
    assert good.disclosure == "APR 9.9%" and good.attachable


@pytest.mark.parametrize("disclosure", ["\u200b", "\x00", "-"])
def test_a_record_stored_before_the_rule_with_no_real_disclosure_is_never_attached(
    disclosure: str,
) -> None:
    stored = {**CREDIT, "disclosure": disclosure}
    catalog = Catalog.from_raw("r1", {}, {b"p-loan": json.dumps(stored).encode()})
    record = catalog.products.get("p-loan")
    assert record is None or not record.attachable
    fields: dict[str, Any] = {
        **stored,
        "category": ProductCategory.CREDIT,
        "status": ItemStatus.LIVE,
    }
    assert not ProductRecord.model_construct(**fields).attachable  # never validated
    assert ProductRecord.model_construct(**{**fields, "disclosure": "APR 9.9%"}).attachable


def test_a_video_title_stored_before_the_rule_retires_no_video() -> None:
    stored = {"video_id": "v1", "title": "Saving\tbasics"}
    catalog = Catalog.from_raw("r1", {b"v1": json.dumps(stored).encode()}, {})
    assert catalog.retired_videos() == frozenset()
