# PIR motion sensor: the interrupt only records the edge; events are produced outside the ISR.
from .schedule import ticks_diff


class PirMotion:
    """Turns PIR levels into motion_started / motion_stopped with a hold time.

    Motion starts on a rising edge (immediately) and stops once the PIR output has been low
    for `hold_ms` (PIRs re-trigger while someone moves, so single low blips are ignored).
    """

    def __init__(self, hal, flag):
        self.hal = hal
        self.flag = flag          # woken from the interrupt (ThreadSafeFlag on the board)
        self.active = False
        self.low_since = None
        self.edges = 0
        hal.pir_irq(self._on_edge)

    def _on_edge(self, _pin=None):
        # Interrupt context on the board: no allocation, just wake the motion task.
        self.edges += 1
        self.flag.set()

    def update(self, now, hold_ms):
        """Check the PIR level; returns 'motion_started', 'motion_stopped' or None."""
        level = self.hal.pir_value()
        if level:
            self.low_since = None
            if not self.active:
                self.active = True
                return "motion_started"
            return None
        if not self.active:
            return None
        if self.low_since is None:
            self.low_since = now
        if ticks_diff(now, self.low_since) >= hold_ms:
            self.active = False
            self.low_since = None
            return "motion_stopped"
        return None

    def wait_hint_ms(self, now, hold_ms):
        """How long the motion task may sleep before a stop could become due (None = until an edge)."""
        if self.active and self.low_since is not None:
            left = hold_ms - ticks_diff(now, self.low_since)
            return left if left > 0 else 0
        if self.active:
            return 250  # high: poll the level so a missed falling edge still stops motion
        return None
