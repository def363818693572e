# DHT22 (AM2302) temperature/humidity driver: decodes the sensor's 5-byte frame.
from .schedule import ticks_diff
from .settings import rounded


class SensorFault(Exception):
    """A reading failed (timeout, bad checksum, out of range)."""


def decode_dht22(frame):
    """(temperature °C, humidity %) from the 40-bit DHT22 frame; SensorFault if corrupt."""
    if frame is None or len(frame) != 5:
        raise SensorFault("DHT22 frame must be 5 bytes")
    if (frame[0] + frame[1] + frame[2] + frame[3]) & 0xFF != frame[4]:
        raise SensorFault("DHT22 checksum mismatch")
    humidity = ((frame[0] << 8) | frame[1]) / 10.0
    raw_t = ((frame[2] & 0x7F) << 8) | frame[3]
    temperature = raw_t / 10.0
    if frame[2] & 0x80:
        temperature = -temperature
    if humidity > 100.0 or temperature < -40.0 or temperature > 80.0:
        raise SensorFault("DHT22 reading out of range")
    return temperature, humidity


def encode_dht22(temperature, humidity):
    """The frame a DHT22 sends for these values (used by the simulated HAL and tests)."""
    h = int(round(humidity * 10))
    t = int(round(abs(temperature) * 10))
    b2 = (t >> 8) & 0x7F
    if temperature < 0:
        b2 |= 0x80
    frame = bytearray([(h >> 8) & 0xFF, h & 0xFF, b2, t & 0xFF, 0])
    frame[4] = (frame[0] + frame[1] + frame[2] + frame[3]) & 0xFF
    return bytes(frame)


class Dht22:
    """Reads at most every `min_interval_ms` (the sensor needs 2 s); keeps the last good reading."""

    def __init__(self, hal, min_interval_ms=2000):
        self.hal = hal
        self.min_interval_ms = min_interval_ms
        self.last = None
        self.last_at = None
        self.errors = 0
        self.consecutive_errors = 0
        self.last_error = None

    def read(self, now, calibration):
        """(temperature, humidity) with offsets applied; (None, None) when the read failed."""
        if self.last is not None and self.last_at is not None and \
                ticks_diff(now, self.last_at) < self.min_interval_ms:
            return self._calibrated(self.last, calibration)
        try:
            self.last = decode_dht22(self.hal.dht_read())
        except OSError:
            # No answer on the data pin (the OSError text differs between ports: keep ours fixed).
            self._failed("DHT22 timeout")
            return None, None
        except SensorFault as exc:
            self._failed("DHT22 " + str(exc))
            return None, None
        self.last_at = now
        self.consecutive_errors = 0
        return self._calibrated(self.last, calibration)

    def _failed(self, why):
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = why
        self.last = None
        self.last_at = None

    def _calibrated(self, reading, calibration):
        t = reading[0] + calibration["temperature_offset"]
        h = reading[1] + calibration["humidity_offset"]
        h = 0.0 if h < 0 else (100.0 if h > 100 else h)
        return rounded(t, 1), rounded(h, 1)
