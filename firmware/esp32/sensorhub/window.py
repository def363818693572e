# Window motor: a hobby servo driven to a position 0-100 % (0 = closed).
# Movement planning is pure (tick values in, position out); the servo pulse goes through the HAL.
from .protocol import CommandRefused, is_number, show
from .schedule import ticks_diff

ABS_MIN_US = 500   # no servo pulse outside this range, whatever the calibration says
ABS_MAX_US = 2500
REPORT_MS = 500    # a `window` line at most this often while moving
DETACH_MS = 500    # stop driving the servo this long after a move ends (no hum, no heat)
MOVE_MARGIN = 2.0  # a move taking this many times its planned duration is a fault


def ease(x):
    """Smoothstep: zero speed at both ends of a move (no jerk on the window)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


def parse_target(cmd):
    """The `window` command's request: an int 0..100, or None for stop."""
    if cmd.get("stop") is True or cmd.get("position") == "stop":
        return None
    if "position" not in cmd:
        raise CommandRefused('window needs "position" 0..100 or "stop": true')
    value = cmd["position"]
    if not is_number(value) or value < 0 or value > 100:
        raise CommandRefused("position must be an integer 0..100, got %s" % show(value))
    return int(value + 0.5)


def pulse_us(position, calibration):
    """Servo pulse width for a position, clamped to the calibrated and absolute limits."""
    lo = calibration["min_us"]
    hi = calibration["max_us"]
    pos = 100 - position if calibration["invert"] else position
    us = lo + (hi - lo) * pos / 100.0
    if us < lo:
        us = lo
    if us > hi:
        us = hi
    if us < ABS_MIN_US:
        us = ABS_MIN_US
    if us > ABS_MAX_US:
        us = ABS_MAX_US
    return int(us + 0.5)


class WindowMotor:
    """Plans smooth moves and drives the servo; `tick(now)` advances a move in progress."""

    def __init__(self, hal, calibration, now, position=0):
        self.hal = hal
        self.calibration = calibration
        self.position = float(position)
        self.target = int(position)
        self.moving = False
        self.start_pos = self.position
        self.start_at = now
        self.duration_ms = 0
        self.last_report = now
        self.stopped_at = now
        self.attached = False
        self.end_reason = None

    def state(self):
        msg = {"position": int(self.position + 0.5), "target": self.target, "moving": self.moving}
        return msg

    def move_to(self, target, now):
        """Start (or retarget) a move. Returns the target actually used (soft limit applied)."""
        limit = self.calibration["max_open"]
        self.end_reason = None
        if target > limit:
            target = limit
            self.end_reason = "limit"
        self.target = target
        self.start_pos = self.position
        self.start_at = now
        distance = abs(target - self.position)
        speed = self.calibration["speed_pct_s"]
        self.duration_ms = int(distance * 1000.0 / speed) if speed > 0 else 0
        self.moving = distance > 0
        self.last_report = now
        if not self.moving:
            self._drive()
        return target

    def stop(self, now):
        """Stop where the window is now."""
        self.tick(now)
        self.target = int(self.position + 0.5)
        self.position = float(self.target)
        was_moving = self.moving
        self.moving = False
        self.stopped_at = now
        self.end_reason = "stop" if was_moving else None
        self._drive()
        return was_moving

    def home(self, now):
        """Calibration: drive to closed and take that as position 0."""
        self.position = 0.0
        self.target = 0
        self.moving = False
        self.stopped_at = now
        self._drive()

    def tick(self, now):
        """Advance a move; returns 'moving', 'done', 'fault' or None (idle)."""
        if not self.moving:
            if self.attached and ticks_diff(now, self.stopped_at) >= DETACH_MS:
                self.hal.servo_off()
                self.attached = False
            return None
        elapsed = ticks_diff(now, self.start_at)
        if self.duration_ms <= 0 or elapsed >= self.duration_ms:
            self.position = float(self.target)
            self.moving = False
            self.stopped_at = now
            self._drive()
            return "done"
        if elapsed > MOVE_MARGIN * self.duration_ms + 1000:
            self.moving = False
            self.end_reason = "fault"
            self.target = int(self.position + 0.5)
            return "fault"
        frac = ease(elapsed / self.duration_ms)
        self.position = self.start_pos + (self.target - self.start_pos) * frac
        self._drive()
        return "moving"

    def report_due(self, now):
        if ticks_diff(now, self.last_report) >= REPORT_MS:
            self.last_report = now
            return True
        return False

    def _drive(self):
        self.hal.servo_pulse_us(pulse_us(self.position, self.calibration))
        self.attached = True
