"""Bulk loads name the file, line and field of the first bad record."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsvc.admin.loaders import LoadError, read_jsonl, read_profiles_csv
from recsvc.contract.catalog import ProductRecord


def test_products_jsonl_reads_and_names_the_bad_line(tmp_path: Path) -> None:
    good = '{"product_id": "p1", "name": "Saver", "category": "deposit", "risk_level": 1}'
    path = tmp_path / "products.jsonl"
    path.write_text(good + "\n\n" + good.replace('"risk_level": 1', '"risk_level": 9') + "\n")
    with pytest.raises(LoadError, match=r"products.jsonl:3: risk_level"):
        read_jsonl(path, ProductRecord)
    path.write_text(good + "\n{oops\n")
    with pytest.raises(LoadError, match=r"products.jsonl:2: not JSON"):
        read_jsonl(path, ProductRecord)
    path.write_text(good + "\n")
    assert read_jsonl(path, ProductRecord)[0].risk_level == 1


def test_profiles_csv(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,segment,risk_tolerance,lifecycle,holdings\nu1,young,3,active,p1|p2\nu2,,,,\n"
    )
    profiles = dict(read_profiles_csv(path))
    assert profiles["u1"].risk_tolerance == 3
    assert profiles["u1"].holdings == ["p1", "p2"]
    assert profiles["u2"].risk_tolerance is None and profiles["u2"].holdings == []
    path.write_text("user_id,risk_tolerance\nu1,7\n")
    with pytest.raises(LoadError, match=r"users.csv:2: risk_tolerance"):
        read_profiles_csv(path)
    path.write_text("user_id,risk_tolerance\nu{1},2\n")
    with pytest.raises(LoadError, match=r"users.csv:2: user_id"):
        read_profiles_csv(path)
