"""The status page with 1,000 devices: page load and time to first values, in a real browser.

The connector runs 1,000 devices on 10 emulated boards (as ``e2e_scale_1000_serial_devices``:
100 devices a board, a sensor line per board per second; ``events_per_s`` says how many events
the aggregator published meanwhile, all of them on the page's ``/events``). Each round opens
``/`` in a fresh tab of Debian's chromium and reads, from the page's own clock (navigation
start = 0):

- ``load_ms``: the end of the load event (HTML, styles, the ES modules);
- ``first_values_ms``: the ``sensor-hub:first-values`` mark, the frame after every device's row
  was on the page with its value (``devices_with_values``: windows and LEDs have none until
  they are moved or switched; the pulls of ``/devices?include=state``, ``/history``,
  ``/overview`` and ``/errors`` done and rendered);
- ``pulled_ms``: when the last of those pulls had arrived (the rest of ``first_values_ms`` is
  building and drawing the rows);
- ``fps``: animation frames per second over the 2 s after that, while the events keep coming
  (rows change one by one, batched per frame: a page that re-rendered the list per event would
  drop frames here).

Both times stand beside a blank page loaded in the same browser (``ceiling_browser_blank_page``).
"""
from __future__ import annotations

import time

from bench.fixtures import NAVIGATION_TIMING, start_browser
from bench.harness import Context, Sample, Scenario, at_least, at_most
from bench.stack import Stack

BOARDS, PER_TYPE = 10, 20      # 10 boards x 5 types x 20 = 1,000 devices
STEADY_BOARD = {"interval_ms": 1000, "status_interval_ms": 30_000, "motion_hold_ms": 1000}

FIRST_VALUES = """(() => {
    const mark = performance.getEntriesByName('sensor-hub:first-values')[0];
    if (!mark) return null;
    const rows = [...document.querySelectorAll('.row')];
    // By path: the page's preloads (initiator "link") or its own fetches, whichever answered.
    const pulls = performance.getEntriesByType('resource').filter(r => r.responseEnd <= mark.startTime
        && ['/devices', '/history', '/overview', '/errors'].includes(new URL(r.name).pathname));
    const slowest = pulls.reduce((a, r) => (r.responseEnd > a.responseEnd ? r : a), {responseEnd: 0, name: ''});
    return {first_values_ms: mark.startTime, rows: rows.length, pulled_ms: slowest.responseEnd,
            with_values: rows.filter(r => r.querySelector('.main').textContent !== '—').length};
})()"""

FRAME_RATE = """new Promise(resolve => {
    let frames = 0;
    const start = performance.now();
    const frame = () => {
        frames += 1;
        const elapsed = performance.now() - start;
        if (elapsed < 2000) requestAnimationFrame(frame); else resolve(frames / (elapsed / 1000));
    };
    requestAnimationFrame(frame);
})"""


def setup(ctx: Context):
    stack = Stack(ctx, boards=BOARDS, per_type=PER_TYPE, board_config=STEADY_BOARD)
    browser = start_browser(ctx)
    ctx.note(f"{len(stack.doc['devices'])} devices on {BOARDS} boards, a sensor line per board per second "
             "; a fresh chromium tab per round "
             "(1280×900, headless)")
    return stack, browser


def run(ctx: Context, rig) -> Sample:
    stack, browser = rig
    browser.open(f"{stack.aggregator.url}/", fresh=True)
    browser.wait("document.body.dataset.ready === 'true'", timeout=60)
    timing = browser.wait(NAVIGATION_TIMING, timeout=30)
    shown = browser.eval(FIRST_VALUES)
    published = stack.aggregator.get("/health").json()["events"]
    started = time.perf_counter()
    fps = browser.eval(FRAME_RATE)
    events = stack.aggregator.get("/health").json()["events"]["published"] - published["published"]
    return Sample(figures={"load_ms": timing["load_ms"], "first_values_ms": shown["first_values_ms"],
                           "pulled_ms": shown["pulled_ms"], "fps": fps,
                           "events_per_s": events / (time.perf_counter() - started),
                           "devices_shown": float(shown["rows"]),
                           "devices_with_values": float(shown["with_values"])})


SCENARIO = Scenario(
    "e2e_status_page_1000_devices", title="status page with 1,000 devices (chromium)",
    setup=setup, run=run, baseline="ceiling_browser_blank_page",
    baseline_figures={"load_ms": "load_ms", "first_values_ms": "load_ms"},
    targets={"first_values_ms": at_most(2000), "fps": at_least(30)},
    quick={}, full={}, rounds={"quick": 2, "full": 5},
    figures=("load_ms", "first_values_ms", "pulled_ms", "fps", "events_per_s", "devices_shown", "devices_with_values"))
