"""Ceiling: a static blank page loaded in the same browser the status page is measured in
(Debian's chromium, playwright-core), from a loopback HTTP server: the browser's own cost of
opening a page, which the status page's figures stand beside."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.fixtures import NAVIGATION_TIMING, start_browser
from bench.harness import Context, Sample, Scenario

BLANK = b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>blank</title></head><body></body></html>"


class _Blank(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(BLANK)))
        self.end_headers()
        self.wfile.write(BLANK)

    def log_message(self, *args: object) -> None:
        pass


def setup(ctx: Context):
    browser = start_browser(ctx)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    threading.Thread(target=server.serve_forever, daemon=True, name="blank page").start()
    ctx.cleanup.callback(server.server_close)
    ctx.cleanup.callback(server.shutdown)
    ctx.note(f"{ctx.params['loads']} fresh tabs per round, each loading a blank HTML page from a loopback server")
    return browser, f"http://127.0.0.1:{server.server_address[1]}/"


def run(ctx: Context, rig) -> Sample:
    browser, url = rig
    loads = []
    for _ in range(ctx.params["loads"]):
        browser.open(url, fresh=True)
        loads.append(browser.wait(NAVIGATION_TIMING, timeout=30)["load_ms"])
    loads.sort()
    return Sample(figures={"load_ms": loads[len(loads) // 2]})


SCENARIO = Scenario("ceiling_browser_blank_page", title="a blank page in chromium (the browser's own cost)",
                    setup=setup, run=run, quick={"loads": 3}, full={"loads": 10}, figures=("load_ms",))
