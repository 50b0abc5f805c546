"""Configuration comes from RECSVC_* variables; a bad value names its variable."""

from __future__ import annotations

import pytest

from recsvc.feed.attach import UnknownRiskPolicy
from recsvc.service.settings import SettingsError, load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSVC_REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("RECSVC_DAILY_CAP_PER_PRODUCT", "5")
    monkeypatch.setenv("RECSVC_UNKNOWN_RISK_POLICY", "none")
    settings = load_settings()
    assert settings.redis_url == "redis://cache:6380/2"
    assert settings.daily_cap_per_product == 5
    assert settings.unknown_risk_policy is UnknownRiskPolicy.NONE
    assert settings.max_attached_per_page == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECSVC_REDIS_URL", "localhost:6379"),
        ("RECSVC_REDIS_TIMEOUT_MS", "0"),
        ("RECSVC_POLL_SECONDS", "ten"),
        ("RECSVC_UNKNOWN_RISK_POLICY", "maybe"),
        ("RECSVC_REDIS_PREFIX", "a{b}"),
        ("RECSVC_DAILY_CAP_PER_PRODUCT", "-1"),
        ("RECSVC_FRESHNESS_TOPIC_HALF_LIVES", "market-news=6,explainers"),
        ("RECSVC_FRESHNESS_TOPIC_HALF_LIVES", "market-news=-6"),
        ("RECSVC_FRESHNESS_WEIGHT", "nan"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
