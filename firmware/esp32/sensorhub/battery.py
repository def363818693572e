# Battery voltage through a resistor divider on an ADC pin, and a Li-ion state of charge.
from .settings import rounded

# (volts, percent) of a single Li-ion cell under light load, highest first.
LIION_CURVE = (
    (4.20, 100), (4.10, 90), (4.00, 80), (3.92, 70), (3.85, 60), (3.79, 50),
    (3.74, 40), (3.70, 30), (3.66, 20), (3.60, 10), (3.50, 5), (3.30, 0),
)


def percent_from_volts(volts):
    if volts >= LIION_CURVE[0][0]:
        return 100
    for i in range(1, len(LIION_CURVE)):
        v_hi, p_hi = LIION_CURVE[i - 1]
        v_lo, p_lo = LIION_CURVE[i]
        if volts >= v_lo:
            return int(p_lo + (p_hi - p_lo) * (volts - v_lo) / (v_hi - v_lo) + 0.5)
    return 0


class BatteryMonitor:
    """Averages a few ADC samples (the ESP32 ADC is noisy) and undoes the divider."""

    def __init__(self, hal, r_top=100000, r_bottom=100000, samples=4):
        self.hal = hal
        self.ratio = (r_top + r_bottom) / r_bottom
        self.samples = samples
        self.errors = 0

    def read(self):
        """(volts, percent), or (None, None) when the ADC fails."""
        try:
            total = 0
            for _ in range(self.samples):
                total += self.hal.adc_read_uv()
        except OSError:
            self.errors += 1
            return None, None
        volts = total / self.samples / 1000000.0 * self.ratio
        return rounded(volts, 2), percent_from_volts(volts)
