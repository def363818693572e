# Drift-free periodic deadlines on a wrapping millisecond tick counter.
# Pure arithmetic (no clock of its own) so it is tested with scripted tick values.

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms() wraps here


def ticks_diff(a, b):
    """a - b on wrapping ticks, like time.ticks_diff (signed, |result| < TICKS_PERIOD/2)."""
    half = TICKS_PERIOD // 2
    return ((a - b + half) % TICKS_PERIOD) - half


def ticks_add(a, delta):
    return (a + delta) % TICKS_PERIOD


class Periodic:
    """A period that fires at start + k*interval, never drifting with task latency.

    When the task wakes late it may fire several periods at once (up to max_burst, e.g. an
    emulator at a 1 ms interval); older missed periods are skipped and counted in `missed`.
    """

    def __init__(self, interval_ms, now, max_burst=1):
        self.interval_ms = interval_ms
        self.next_at = ticks_add(now, interval_ms)
        self.max_burst = max_burst
        self.missed = 0

    def reset(self, interval_ms, now):
        """A new interval counts from now (a config change takes effect at once)."""
        self.interval_ms = interval_ms
        self.next_at = ticks_add(now, interval_ms)

    def delay_ms(self, now):
        """Milliseconds to sleep before the next period is due (0 when due)."""
        wait = ticks_diff(self.next_at, now)
        return wait if wait > 0 else 0

    def due(self, now):
        """How many periods fire now (0 if not yet due); advances the deadline past them."""
        late = ticks_diff(now, self.next_at)
        if late < 0:
            return 0
        periods = late // self.interval_ms + 1
        fire = periods if periods < self.max_burst else self.max_burst
        self.missed += periods - fire
        self.next_at = ticks_add(self.next_at, periods * self.interval_ms)
        return fire
