"""Every metric the alert rules and the Grafana dashboard name exists: the service's in GET
/metrics of a running service (a family is listed with HELP and TYPE before its first sample),
the nightly job's in the textfile its metrics writer produces. And the dashboard shows every
family the service exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml  # type: ignore[import-untyped]  # PyYAML: uvicorn[standard], a service dependency

from training.nightly.metrics import write_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "recsvc-alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "recsvc.json"
NAME = re.compile(r"\brecsvc_[a-z0-9_]+\b")
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum")}  # others: the family's own name


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def families(exposition: str) -> dict[str, set[str]]:
    """Family -> the sample names it may have, from the # TYPE lines of Prometheus text
    (without prometheus_client's `*_created` companions: when each series started)."""
    found = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE):
        if not name.endswith("_created"):
            found[name] = {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return found


def nightly_textfile(tmp_path: Path) -> str:
    """The nightly job's metrics file, as its writer makes it after a gated run."""
    path = tmp_path / "recsvc_nightly.prom"
    scores = {"ndcg_at_10": 0.3, "coverage_at_10": 0.4}
    write_metrics(path, "gated", 0.0, 60.0, {"metrics": {"new": scores, "live": scores}})
    return path.read_text()


def test_every_metric_the_alerts_and_the_dashboard_name_exists(
    service: httpx.Client, tmp_path: Path
) -> None:
    exposed = families(service.get("/metrics").text) | families(nightly_textfile(tmp_path))
    samples = set().union(*exposed.values())
    for source, queries in (("rules", rule_queries()), ("dashboard", dashboard_queries())):
        named = {name for query in queries for name in NAME.findall(query)}
        assert named and named - samples == set(), source


def test_every_route_the_alerts_and_the_dashboard_name_is_a_route(service: httpx.Client) -> None:
    paths = set(service.get("/openapi.json").json()["paths"])
    named = {
        route
        for query in rule_queries() + dashboard_queries()
        for route in re.findall(r'route="([^"]+)"', query)
    }
    assert named and named <= paths


def test_the_dashboard_shows_every_metric_the_service_exposes(service: httpx.Client) -> None:
    exposed = families(service.get("/metrics").text)
    shown = {name for query in dashboard_queries() for name in NAME.findall(query)}
    missing = {
        family
        for family, samples in exposed.items()
        if family.startswith("recsvc_") and not samples & shown
    }
    assert missing == set()
