"""The status page (GET / on the aggregator) in a real browser, against the connector with an
emulated board: Debian's chromium driven by playwright-core (testkit/browser.py). One
stack and one browser session for the whole module; the checks run in order on the same page.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from testkit.browser import Browser, missing
from testkit.connector import BOARD, ConnectorStack
from testkit.helpers import wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(missing() == "node is not installed", reason="node is not installed")]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def row(device_id: str) -> str:
    return f'document.querySelector(\'.row[data-id="{device_id}"]\')'


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = ConnectorStack(tmp_path_factory.mktemp("status-page"))
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def page(stack, tmp_path_factory):
    if problem := missing():
        pytest.fail(f"the status page cannot be tested in a browser: {problem}")
    browser = Browser(stderr_path=tmp_path_factory.mktemp("browser") / "driver.log")
    try:
        wait_for(lambda: requests.get(stack.aggregator_url + "/devices", timeout=5).json()["devices"][0]["online"],
                 60, message="the board's devices online")
        browser.open(stack.aggregator_url + "/")
        browser.wait("document.body.dataset.ready === 'true'", timeout=30)
        yield browser
    finally:
        browser.close()


def test_the_page_shows_every_configured_device_grouped_by_board(stack, page):
    configured = {d["device_id"] for d in requests.get(stack.aggregator_url + "/devices", timeout=5).json()["devices"]}
    shown = page.eval("[...document.querySelectorAll('.row')].map(r => r.dataset.id)")
    assert sorted(shown) == sorted(configured)
    group = page.eval(f"document.querySelector('.group[data-group=\"board:{BOARD}\"] h2').textContent")
    assert group == "Living room ESP32"  # the board's name, from the serial handler through /overview
    assert page.wait(f"{row('living_window')}.classList.contains('offline') === false")
    # The board's link in its group's header (GET /overview → the serial handler's /boards).
    assert page.wait(f"document.querySelector('.group[data-group=\"board:{BOARD}\"] .pill').textContent"
                     ".startsWith('online')", timeout=15)


def test_a_reading_set_on_the_emulator_is_on_the_page_within_1_s(stack, page):
    # The page notes the moment the value is on screen (the animation frame after the row changed),
    # by the same wall clock as this process.
    page.eval(f"""(() => {{
        const cell = {row('living_temperature')}.querySelector('.main');
        window.__seen = null;
        new MutationObserver(() => {{
            if (cell.textContent === '31.7' && window.__seen === null)
                requestAnimationFrame(() => {{ window.__seen = Date.now(); }});
        }}).observe(cell, {{childList: true, characterData: true, subtree: true}});
    }})()""")
    sent = time.time() * 1000
    assert stack.emulator.control({"set": {"temperature": 31.7}})["ok"]
    assert stack.emulator.control({"burst": 1})["ok"]
    seen = page.wait("window.__seen", timeout=10)
    assert seen - sent < 1000, f"the reading took {seen - sent:.0f} ms to reach the page"
    assert page.eval(f"{row('living_temperature')}.querySelector('.spark polyline').getAttribute('points')")


def test_moving_the_slider_moves_the_emulated_window_and_shows_success(stack, page):
    slider = '.row[data-id="living_window"] input[type=range]'
    page.call("click_at", selector=slider, fraction=0.6)
    # The first command asks for the API token (kept in the browser for the next ones).
    assert page.wait("document.getElementById('token-dialog').open")
    token = (Path(stack.env["DATA_DIR"]) / "api-token").read_text().strip()
    page.call("fill", selector="#token-input", value=token)
    page.call("click", selector="#token-save")
    status = page.wait(f"(s => s.classList.contains('ok') || s.classList.contains('bad') ? s.textContent : '')"
                       f"({row('living_window')}.querySelector('.cmd'))", timeout=20)
    assert status.startswith("✓ success"), status
    chosen = int(page.eval(f"document.querySelector('{slider}').value"))
    assert 40 <= chosen <= 80

    def window_position() -> int:
        return stack.emulator.control({"get": "state"})["state"]["board"]["window"]["position"]

    wait_for(lambda: window_position() == chosen, 15, message=f"the emulated window at {chosen} %")
    assert page.wait(f"{row('living_window')}.querySelector('.main').textContent === '{chosen}'", timeout=10)
    assert page.eval("Object.keys(localStorage).some(k => k.startsWith('sensor-hub.api-token.'))")


def test_an_unplugged_board_shows_offline_with_its_reason_and_comes_back(stack, page):
    assert stack.emulator.control({"fault": "unplug", "seconds": 4})["ok"]
    reason = page.wait(f"(r => r.classList.contains('offline') && r.querySelector('.reason').textContent)"
                       f"({row('living_temperature')})", timeout=15)
    assert reason != "offline"  # the reason itself, not the page's word for "no reason given"
    api = requests.get(stack.aggregator_url + "/device/living_temperature", timeout=5).json()
    if not api["online"]:  # still unplugged: the page says what the API says
        assert reason == api["reason"]
    assert page.wait(f"document.querySelector('.group[data-group=\"board:{BOARD}\"] .count').textContent"
                     ".startsWith('0/')")
    # Plugged in again after 4 s: online again, without a reload.
    assert page.wait(f"{row('living_temperature')}.classList.contains('offline') === false", timeout=30)


def test_readable_on_a_phone_and_in_both_themes(page):
    page.call("viewport", width=390, height=844)
    assert page.wait("document.documentElement.scrollWidth <= window.innerWidth + 1")
    background = "getComputedStyle(document.body).backgroundColor"
    page.call("click", selector="#theme")  # auto -> light
    light = page.eval(background)
    page.call("click", selector="#theme")  # light -> dark
    assert page.eval("document.documentElement.dataset.theme") == "dark"
    assert page.eval(background) != light
    page.call("click", selector="#theme")  # back to auto
    page.call("viewport", width=1280, height=900)


def test_the_filter_hides_what_does_not_match(page):
    page.call("fill", selector="#filter", value="window")
    assert page.wait("[...document.querySelectorAll('.row')].filter(r => !r.hidden).length === 1")
    page.call("fill", selector="#filter", value="")
    assert page.wait("[...document.querySelectorAll('.row')].every(r => !r.hidden)")


def test_nothing_left_loopback_and_the_console_stayed_clean(page):
    log = page.log()
    assert log["requests"], "no request recorded at all"
    assert log["blocked"] == []
    hosts = {urlsplit(r["url"]).hostname for r in log["requests"]}
    assert hosts <= LOOPBACK, hosts
    problems = [m for m in log["console"] if m["type"] in ("error", "warning")]
    assert problems == [], json.dumps(problems, indent=1)
    assert log["pageErrors"] == []



def test_a_command_the_board_never_acknowledges_shows_a_timeout_where_it_was_given(stack, page):
    # After the clean-console check: the browser logs the 504 as a failed resource, rightly.
    assert stack.emulator.control({"fault": "noack"})["ok"]
    try:
        page.call("click", selector='.row[data-id="living_led"] button')
        status = page.wait(f"(s => s.classList.contains('bad') && s.textContent)"
                           f"({row('living_led')}.querySelector('.cmd'))", timeout=30)
        assert status.startswith("✗ timeout"), status
        assert page.eval(f"{row('living_window')}.querySelector('.cmd').textContent").startswith("✓ success")
    finally:
        assert stack.emulator.control({"fault": "clear"})["ok"]
