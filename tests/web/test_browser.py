"""The console in a real browser (Debian's chromium driven by Playwright, no browser download): every page loads
without console errors and draws its charts from data, the top-N table shows ``flowscope top``'s numbers, and a
filter typed into the box changes the chart and the URL.

``FLOWSCOPE_SCREENSHOTS=DIR`` also saves a screenshot of each page into DIR (docs/console/ holds the committed
ones).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import require_tool, shared_data, skip_or_fail
from tests.web.conftest import serve

from flowscope.cli import main
from helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGES = ("traffic", "sankey", "top", "flows", "exporters", "store")
WINDOW = "since=3d"  # the demo's flows span the last day


def cli(lake: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo traffic of the last day, plus recorded NetFlow exports so the exporters page has health to show."""
    root = tmp_path_factory.mktemp("console") / "lake"
    cli(root, "demo", "--flows", "20000", "--days", "1", "--packets", "2000")
    akvorado = shared_data("netflow", "akvorado")
    cli(root, "read", "--as-exports", *(str(akvorado / n) for n in ("template.pcap", "data.pcap", "nfv5.pcap")))
    return root


@pytest.fixture(scope="module")
def server(lake: Path) -> Iterator[str]:
    yield from serve(lake)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (the test extra installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught exceptions in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.errors = []
    opened.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: opened.errors.append(str(e)))
    yield opened
    context.close()


def load(page: Any, url: str) -> None:
    """Open ``url`` and wait until the page drew its data (or showed an error)."""
    page.goto(url)
    page.locator("#updated:not(:empty), #error:not([hidden])").first.wait_for(timeout=20_000)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_loads_without_errors_and_draws(server: str, page: Any, name: str) -> None:
    load(page, f"{server}{name}.html?{WINDOW}")
    assert page.errors == [] and page.locator("#error").is_hidden(), page.locator("#error").text_content()
    drawn = {
        "traffic": "#chart .scatterlayer .trace path.js-fill",
        "sankey": "#chart .sankey-node rect",
        "top": "#chart .bars .point path",
        "flows": "#table tbody tr",
        "exporters": "#exporters tbody tr",
        "store": "#tables tbody tr",
    }[name]
    assert page.locator(drawn).count() >= (2 if name == "sankey" else 1)
    if directory := os.environ.get("FLOWSCOPE_SCREENSHOTS"):
        page.screenshot(path=str(Path(directory) / f"{name}.png"))


def value(text: str) -> str | float:
    """A table cell as a number when it is one (the page prints 0.0 as 0), else as text."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def test_the_top_table_shows_flowscope_tops_numbers(server: str, page: Any, lake: Path) -> None:
    load(page, f"{server}top.html?{WINDOW}&by=port&metric=packets&count=20")
    rows = page.locator("#table tbody tr").all()
    shown = [[value(cell) for cell in row.locator("td").all_text_contents()] for row in rows]
    printed = cli(lake, "top", "--since", "3d", "--by", "port", "--metric", "packets", "-n", "20", "--format", "json")
    expected = [[value(str(v)) for v in json.loads(line).values()] for line in printed.splitlines()]
    assert len(expected) >= 10 and shown == expected


def test_a_filter_typed_into_the_box_changes_the_chart_and_the_url(server: str, page: Any) -> None:
    load(page, f"{server}traffic.html?{WINDOW}&by=proto")
    legend = page.locator("#chart .legend .traces text")
    assert "udp" in legend.all_text_contents() and "tcp" in legend.all_text_contents()
    page.fill("#filter", "proto = udp and dst_port in (53, 443)")
    page.press("#filter", "Enter")
    page.wait_for_url("**filter=proto+%3D+udp+and+dst_port+in+%2853%2C+443%29**")
    page.locator("#chart .legend .traces text").first.wait_for()
    wait_until(lambda: legend.all_text_contents() == ["udp"], timeout=10)
    assert legend.all_text_contents() == ["udp"]
    page.reload()  # the URL alone brings the same view back
    page.locator("#updated:not(:empty)").wait_for()
    assert page.input_value("#filter") == "proto = udp and dst_port in (53, 443)" and page.errors == []


def test_a_bad_filter_shows_where_it_is_wrong(server: str, page: Any) -> None:
    load(page, f"{server}top.html?{WINDOW}")
    page.fill("#filter", "dst_port = https")
    page.click("#apply")
    error = page.locator("#error pre")
    error.wait_for()
    assert error.text_content() == "dst_port = https\n           ^"


@pytest.fixture(scope="module")
def clickhouse_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``serve --from clickhouse://`` over demo traffic of the last day (no lake: no exporter health)."""
    from tests.clickhouse_server import run_server

    for server in run_server():
        url = server.url("console")
        nowhere = tmp_path_factory.mktemp("no-lake") / "lake"
        demo = ["--lake", str(nowhere), "demo", "--flows", "20000", "--days", "1", "--to", url]
        assert CliRunner().invoke(main, demo).exit_code == 0
        yield from serve(nowhere, "--from", url)


@pytest.mark.parametrize("name", ["traffic", "sankey", "top", "flows", "store"])
def test_the_pages_load_and_draw_from_clickhouse(clickhouse_console: str, page: Any, name: str) -> None:
    load(page, f"{clickhouse_console}{name}.html?{WINDOW}")
    assert page.errors == [] and page.locator("#error").is_hidden(), page.locator("#error").text_content()
    drawn = {
        "traffic": "#chart .scatterlayer .trace path.js-fill",
        "sankey": "#chart .sankey-node rect",
        "top": "#chart .bars .point path",
        "flows": "#table tbody tr",
        "store": "#updated:not(:empty)",
    }[name]
    assert page.locator(drawn).count() >= 1
