"""The console's Operations view (``/#operations``) in headless Chromium against the shared
``agentlane dev`` (tests/clients/conftest.py) after a run completed: the runners' and shards'
tables list the dev runners holding every shard, the usage table has the run's model, and the
uPlot charts are drawn with data (time series from the samples the page took, spend and tokens
per model per day). The screenshot is kept in test-artifacts/. And uPlot, which the client's
build vendors into gateway/static/vendor/, is the pinned package's files, byte for byte."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.conftest import TYPESCRIPT, needs_node_toolchain
from tests.dev.test_dev_e2e import DevStack
from tests.fixtures.browser import drive_ops_view, needs_browser

UPLOT = "1.6.32"
VENDOR = TYPESCRIPT.parent.parent / "gateway" / "static" / "vendor"
#: What copy-console.mjs copies: the file in gateway/static/vendor/ -> the package's file.
VENDORED = {
    "uPlot.iife.min.js": "dist/uPlot.iife.min.js",
    "uPlot.min.css": "dist/uPlot.min.css",
    "uPlot.LICENSE": "LICENSE",
}


def test_uplot_is_pinned() -> None:
    """The build vendors the version package.json pins exactly (and the lock resolves)."""
    package = json.loads((TYPESCRIPT / "package.json").read_text())
    lock = json.loads((TYPESCRIPT / "package-lock.json").read_text())
    assert package["devDependencies"]["uplot"] == UPLOT
    assert lock["packages"]["node_modules/uplot"]["version"] == UPLOT


@needs_node_toolchain
def test_the_vendored_uplot_is_the_packages() -> None:
    installed = TYPESCRIPT / "node_modules" / "uplot"
    assert json.loads((installed / "package.json").read_text())["version"] == UPLOT
    assert {path.name for path in VENDOR.iterdir()} == set(VENDORED)
    for name, source in VENDORED.items():
        assert (VENDOR / name).read_bytes() == (installed / source).read_bytes(), (
            f"gateway/static/vendor/{name} is not uplot's {source}: `npm run build` in "
            "clients/typescript"
        )


def _overview_after_a_run(stack: DevStack) -> dict[str, Any]:
    """A run completed, and the overview shows it (the projector has its usage) with both
    runners holding their shards."""
    with httpx.Client(base_url=stack.http, timeout=10) as http:
        body = {"runId": f"ops-{time.monotonic_ns()}", "message": "hello operations"}
        run = http.post("/agents/ops-view/runs", json=body)
        assert run.status_code == 202, run.text
        execution = run.json()["executionId"]
        deadline = time.monotonic() + 30
        while True:
            status = http.get(f"/runs/{execution}").json()["status"]
            overview = http.get("/ops/overview").json()
            runners = [r for r in overview["runners"] if r["shards"]]
            if (status == "completed" and overview["usage"]["days"] and len(runners) == 2
                    and overview["shards"]["held"] == overview["shards"]["count"]):
                return dict(overview)
            assert time.monotonic() < deadline, (status, overview)
            time.sleep(0.2)


@needs_browser
@pytest.mark.slow
def test_the_operations_view_shows_the_runners_shards_and_charts(
    stack: DevStack, repo_root: Path
) -> None:
    overview = _overview_after_a_run(stack)
    # agentlane dev's banner announces the view.
    assert f"operations  {stack.http}/#operations" in stack.proc.log()

    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "dev-console-operations.png"
    shown = drive_ops_view(f"{stack.http}/?refresh=1#operations", screenshot)
    assert (shown["view"], shown["sessionHidden"], shown["status"]) == ("operations", True, "live")
    assert shown["error"] is None

    # The runners table: the dev stack's two runners, each serving half the shards.
    serving = [row for row in shown["runners"] if row[-1] == "serving"]
    assert sorted(row[0].split("/")[0] for row in serving) == ["runner-0", "runner-1"]
    assert sum(int(row[2]) for row in serving) == 64
    # The shards table: every shard, each held by one of them.
    assert [int(row[0]) for row in shown["shards"]] == list(range(64))
    assert {row[1] for row in shown["shards"]} == {row[0] for row in serving}
    # The usage table: the offline model of the default tenant (dev prices it).
    [usage] = [row for row in shown["usage"] if row[:2] == ["default", "offline"]]
    assert int(usage[2]) >= 1 and float(usage[5]) > 0
    assert shown["tiles"]["shards"] == "64 / 64"

    charts = shown["charts"]
    assert set(charts) == {"active", "ended", "lag", "due", "spend", "tokens"}
    for name, chart in charts.items():
        assert chart["canvas"] == 1 and chart["width"] > 200, (name, chart)
    # Time series: one point per snapshot the page took; the run that just ended is in them.
    assert charts["active"]["points"] >= 2 and charts["active"]["series"] == (
        "queued,running,suspended"
    )
    assert charts["ended"]["values"] >= 1
    assert charts["due"]["points"] == 64
    # Per model per day: the days of the window, the run's spend and tokens among them.
    assert charts["spend"]["series"] == "offline" and charts["spend"]["values"] >= 1
    assert charts["tokens"]["values"] >= 1
    assert len(overview["runners"]) >= 2
    assert screenshot.stat().st_size > 0
