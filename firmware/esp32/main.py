# sensorhub firmware entry point: builds the real HAL and runs the app; never returns.
# Settings live in config.json (written by the `config`/`calibrate` commands); board.json holds
# what a command cannot change: board id, capabilities, pins, optional Wi-Fi for the HTTP mode.
import json
import time

import machine
from sensorhub import hal as hal_module
from sensorhub.app import App
from sensorhub.board import DEFAULT_CAPS, Board

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio


def load_board_file():
    try:
        with open("board.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def board_id_default():
    return "esp32-" + "".join("%02x" % b for b in machine.unique_id()[-3:])


async def run(doc):
    wlan = None
    extra = []
    http = doc.get("http")
    if http and http.get("ssid"):
        wlan = hal_module.connect_wifi(http["ssid"], http.get("password", ""))
    hal = hal_module.Esp32Hal(doc.get("pins"), wlan)
    board = Board(hal, doc.get("board_id") or board_id_default(), doc.get("caps") or DEFAULT_CAPS)
    app = App(board)
    if wlan is not None and wlan.isconnected():
        from sensorhub.http import HttpApi, serve
        extra.append(serve(HttpApi(board), "0.0.0.0", http.get("port", 80)))
    ended = await app.run(extra)
    if ended == "sleep":
        hal.deep_sleep(board.config["interval_ms"])
    hal.reset()


def main():
    doc = load_board_file()
    try:
        asyncio.run(run(doc))
    except Exception as exc:  # noqa: BLE001 - never a reboot loop at full speed: wait, then reset
        import sys
        sys.print_exception(exc)
        time.sleep(5)
        machine.reset()


main()
