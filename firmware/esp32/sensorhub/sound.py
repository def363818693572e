# INMP441 I2S MEMS microphone reduced to an RMS level in dBFS over short windows.
import math

from .settings import rounded

FULL_SCALE = 1 << 23   # INMP441: 24-bit samples, left-justified in 32-bit slots
SILENCE_DBFS = -120.0


def samples_from_i2s(buf):
    """Signed 24-bit samples from a little-endian buffer of 32-bit I2S slots."""
    out = []
    for i in range(0, len(buf) - 3, 4):
        raw = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)
        if raw & 0x80000000:
            raw -= 1 << 32
        out.append(raw >> 8)
    return out


def rms_dbfs(samples):
    """RMS level of samples relative to full scale, in dBFS (≤ 0; SILENCE_DBFS for silence)."""
    if not samples:
        return SILENCE_DBFS
    mean = sum(samples) / len(samples)  # remove the mic's DC offset first
    acc = 0.0
    for s in samples:
        d = s - mean
        acc += d * d
    rms = math.sqrt(acc / len(samples))
    if rms <= 0:
        return SILENCE_DBFS
    level = 20.0 * math.log10(rms / FULL_SCALE)
    return SILENCE_DBFS if level < SILENCE_DBFS else (0.0 if level > 0 else level)


class SoundMeter:
    """Keeps the level of the last window; `sample()` is called by the sound task."""

    def __init__(self, hal, window_bytes=1024):
        self.hal = hal
        self.buf = bytearray(window_bytes)
        self.level = None
        self.errors = 0

    def sample(self):
        try:
            n = self.hal.i2s_read(self.buf)
        except OSError:
            self.errors += 1
            self.level = None
            return None
        self.level = rounded(rms_dbfs(samples_from_i2s(memoryview(self.buf)[:n])), 1)
        return self.level
