# The main loop: one asyncio task per concern (serial input, readings, heartbeat, motion, window,
# LED, microphone, button, watchdog). Works with MicroPython's asyncio and CPython's asyncio.
try:
    import asyncio
except ImportError:  # MicroPython before 1.20
    import uasyncio as asyncio

from .protocol import LineBuffer
from .schedule import Periodic, ticks_diff

WINDOW_TICK_MS = 20
SOUND_WINDOW_MS = 250
WATCHDOG_MS = 8000
RESET_DELAY_MS = 100


async def sleep_ms(ms):
    await asyncio.sleep(ms / 1000.0)


async def wait_flag(flag, timeout_ms):
    """Wait for a flag (ThreadSafeFlag-like: clears on wait) up to timeout_ms; True if it was set."""
    if timeout_ms is None:
        await flag.wait()
        return True
    try:
        await asyncio.wait_for(flag.wait(), timeout_ms / 1000.0)
        return True
    except asyncio.TimeoutError:
        return False


class App:
    """Runs a Board until it asks to reset or deep-sleep; `run()` returns what ended it."""

    def __init__(self, board, max_burst=1, sensor_extra=None):
        self.board = board
        self.hal = board.hal
        # How many missed periods one wake-up may catch up on: 1 on a board (skip, never flood);
        # None = as many as fit in ~50 ms (the emulator as a load generator at 1 ms intervals).
        self.max_burst = max_burst
        self.sensor_extra = sensor_extra    # emulator: callable adding fields (e.g. "ts") to sensor lines
        self.ended = None
        self.done = asyncio.Event()

    def finish(self, why):
        if self.ended is None:
            self.ended = why
        self.done.set()

    async def run(self, extra_tasks=()):
        board = self.board
        board.hello()
        board.status(self.hal.ticks_ms())
        coros = [self.serial_task(), self.sensor_task(), self.status_task(), self.watchdog_task()]
        if board.motion is not None:
            coros.append(self.motion_task())
        if board.window is not None:
            coros.append(self.window_task())
        if board.led is not None:
            coros.append(self.led_task())
        if board.sound is not None:
            coros.append(self.sound_task())
        coros.append(self.button_task())
        for coro in extra_tasks:
            coros.append(coro)
        tasks = [asyncio.create_task(c) for c in coros]
        try:
            await self.done.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except BaseException:  # noqa: B036 - CancelledError and any task failure end here
                    pass
        return self.ended

    async def serial_task(self):
        lines = LineBuffer()
        while True:
            data = await self.hal.serial_read()
            for line in lines.feed(data):
                self.board.handle_line(line)
                if self.board.reset_requested is not None:
                    await sleep_ms(RESET_DELAY_MS)   # let the ack leave the UART
                    if self.board.reset_requested["factory"]:
                        self.board.store.erase()
                    self.finish("reset")
                    return

    async def sensor_task(self):
        board = self.board
        interval = board.config["interval_ms"]
        period = Periodic(interval, self.hal.ticks_ms(), self.burst_for(interval))
        while True:
            now = self.hal.ticks_ms()
            if board.config["interval_ms"] != interval:
                interval = board.config["interval_ms"]
                period.reset(interval, now)
                period.max_burst = self.burst_for(interval)
            delay = period.delay_ms(now)
            if delay > 0:
                await wait_flag(board.config_flag, delay)
                continue
            for _ in range(period.due(now)):
                board.sensor(now, extra=self.sensor_extra() if self.sensor_extra else None)
            if board.config["deep_sleep"]:
                self.finish("sleep")
                return
            await sleep_ms(0)

    def burst_for(self, interval_ms):
        if self.max_burst is not None:
            return self.max_burst
        return 50 // interval_ms if interval_ms < 50 else 1

    async def status_task(self):
        board = self.board
        while True:
            await sleep_ms(board.config["status_interval_ms"])
            board.status(self.hal.ticks_ms())

    async def motion_task(self):
        board = self.board
        motion = board.motion
        while True:
            now = self.hal.ticks_ms()
            hold = board.config["motion_hold_ms"]
            name = motion.update(now, hold)
            if name is not None:
                board.event(name, now)
                board.led_flag.set()   # LED in motion mode follows at once
            await wait_flag(board.motion_flag, motion.wait_hint_ms(now, hold))

    async def window_task(self):
        board = self.board
        window = board.window
        while True:
            now = self.hal.ticks_ms()
            result = window.tick(now)
            if result in ("done", "fault"):
                board.window_line()
            elif result == "moving" and window.report_due(now):
                board.window_line()
            if window.moving or window.attached:
                await wait_flag(board.window_flag, WINDOW_TICK_MS)
            else:
                await wait_flag(board.window_flag, None)

    async def led_task(self):
        board = self.board
        led = board.led
        while True:
            mode = board.config["led_mode"]
            if mode == "motion" and board.motion is not None:
                led.show(board.motion.active)
                await wait_flag(board.led_flag, 1000)
            elif mode == "heartbeat":
                if board.heartbeat_pulse:
                    board.heartbeat_pulse = False
                    led.show(True)
                    await sleep_ms(50)
                led.show(False)
                await wait_flag(board.led_flag, 100)
            elif led.on and led.blink_ms:
                led.show(not led.lit)
                await wait_flag(board.led_flag, led.blink_ms // 2)
            else:
                if led.lit != led.on:
                    led.show(led.on)
                await wait_flag(board.led_flag, 1000)

    async def sound_task(self):
        while True:
            self.board.sound.sample()
            await sleep_ms(SOUND_WINDOW_MS)

    async def button_task(self):
        board = self.board
        while True:
            await wait_flag(board.button_flag, None)
            start = self.hal.ticks_ms()
            # Debounce, then classify by how long the button stays down.
            await sleep_ms(30)
            while self.hal.button_value() and ticks_diff(self.hal.ticks_ms(), start) < 3000:
                await sleep_ms(20)
            held = ticks_diff(self.hal.ticks_ms(), start)
            board.event("button", self.hal.ticks_ms(), {"press": "long" if held >= 1000 else "short"})

    async def watchdog_task(self):
        # Fed from the loop itself: if any task hogs the CPU the board resets; host silence is no fault.
        self.hal.wdt_start(WATCHDOG_MS)
        while True:
            self.hal.wdt_feed()
            await sleep_ms(WATCHDOG_MS // 4)
