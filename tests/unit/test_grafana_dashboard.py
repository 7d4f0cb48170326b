"""The shipped Grafana dashboard (deploy/grafana/remediator.json) as Grafana reads it: a dashboard
model whose every panel queries the `datasource` variable, with unique ids and no overlapping
panels, and whose queries together cover every metric the README lists (and only those). Its
queries against a real Prometheus are tested in tests/e2e/test_grafana_dashboard.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "remediator.json"
README = REPO / "README.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24  # Grafana's grid is 24 columns wide


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dashboard()["panels"]
    return found


def readme_metrics() -> dict[str, set[str]]:
    """The README's Metrics section: each listed metric and its labels."""
    text = README.read_text()
    section = text[text.index("### Metrics\n") :]
    section = section[: section.index("\n#", 1)]
    listed: dict[str, set[str]] = {}
    for name, labels in re.findall(r"^- `(remediator_\w+)(?:\{([\w,]*)\})?`: \S", section, re.M):
        assert name not in listed, f"{name} is listed twice"
        listed[name] = set(labels.split(",")) if labels else set()
    return listed


def test_it_is_a_grafana_dashboard_model_with_a_datasource_variable() -> None:
    model = dashboard()
    assert model["uid"] == "remediator" and model["title"] == "remediator"
    assert 36 <= model["schemaVersion"] <= 41
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # The job variable is itself a query on the chosen data source.
    assert variables["job"]["datasource"] == DATASOURCE
    assert variables["job"]["definition"].startswith("label_values(remediator_")


def test_every_panel_has_a_type_a_title_a_place_and_queries_on_the_variable() -> None:
    found = panels()
    assert len(found) >= 12
    for panel in found:
        title = panel.get("title")
        assert isinstance(title, str) and title, panel
        assert panel["type"] in {"stat", "timeseries", "table", "bargauge", "state-timeline"}
        assert panel["description"], title  # the question the panel answers, on hover
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, title
        assert all(isinstance(v, int) and v >= 0 for v in grid.values()), title
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, title
        assert panel["datasource"] == DATASOURCE, title
        targets = panel["targets"]
        assert targets, title
        assert len({t["refId"] for t in targets}) == len(targets), title
        for target in targets:
            assert target["datasource"] == DATASOURCE, title
            assert isinstance(target["expr"], str) and "remediator_" in target["expr"], title
            assert 'job=~"$job"' in target["expr"], title


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels()]
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == len(ids)


def test_no_two_panels_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_the_panels_query_every_listed_metric_and_no_other() -> None:
    queried = set()
    for panel in panels():
        for target in panel["targets"]:
            for name in re.findall(r"\bremediator_\w+", target["expr"]):
                queried.add(re.sub(r"_(bucket|count|sum)$", "", name))
    listed = set(readme_metrics())
    assert queried - listed == set(), "queried, but not a metric the daemon exports"
    assert listed - queried == set(), "exported, but on no panel"
