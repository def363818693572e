# Sensirion SCD40 CO2 sensor over I2C (SCD4x datasheet): periodic measurement (a new reading
# every 5 s), read only when the data-ready flag says so, every 16-bit word checked by its CRC-8.
from .climate import SensorFault

ADDRESS = 0x62
START_PERIODIC_MEASUREMENT = 0x21B1
READ_MEASUREMENT = 0xEC05        # answers 9 bytes: CO2, temperature, humidity, each a word + CRC
GET_DATA_READY_STATUS = 0xE4B8   # answers 3 bytes: one word + CRC
STOP_PERIODIC_MEASUREMENT = 0x3F86
COMMAND_DELAY_MS = 1             # "max. command duration" of the read commands
PERIOD_MS = 5000                 # the sensor's own measurement interval in periodic mode
CRC_POLYNOMIAL = 0x31            # x^8 + x^5 + x^4 + 1, initial value 0xFF, no reflection, no final XOR
CO2_MAX_PPM = 40000


def crc8(data):
    """Sensirion's CRC-8 of `data` (the datasheet's example: crc8(b"\\xbe\\xef") == 0x92)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def command(code):
    """The two bytes of a command, most significant first."""
    return bytes([(code >> 8) & 0xFF, code & 0xFF])


def encode_words(words):
    """Words as the sensor sends them: big-endian, each followed by its CRC (simulated HAL, tests)."""
    out = bytearray()
    for word in words:
        pair = bytes([(word >> 8) & 0xFF, word & 0xFF])
        out += pair
        out.append(crc8(pair))
    return bytes(out)


def decode_words(frame, count):
    """`count` words from a frame of `count` * 3 bytes; SensorFault on a short frame or a bad CRC."""
    if frame is None or len(frame) != 3 * count:
        raise SensorFault("SCD40 answer must be %d bytes" % (3 * count))
    words = []
    for i in range(0, 3 * count, 3):
        if crc8(frame[i:i + 2]) != frame[i + 2]:
            raise SensorFault("SCD40 CRC mismatch in word %d" % (i // 3))
        words.append((frame[i] << 8) | frame[i + 1])
    return words


def data_ready(frame):
    """get_data_ready_status: a measurement is waiting unless the 11 least significant bits are 0."""
    return (decode_words(frame, 1)[0] & 0x07FF) != 0


def decode_measurement(frame):
    """(CO2 ppm, temperature °C, relative humidity %) from read_measurement's 9 bytes."""
    co2, raw_t, raw_rh = decode_words(frame, 3)
    if co2 > CO2_MAX_PPM:
        raise SensorFault("SCD40 reading out of range")
    return co2, -45.0 + 175.0 * raw_t / 65535.0, 100.0 * raw_rh / 65535.0


def encode_measurement(co2, temperature, humidity):
    """The 9 bytes read_measurement answers for these values (simulated HAL, tests)."""
    raw_t = int(round((temperature + 45.0) * 65535.0 / 175.0))
    raw_rh = int(round(humidity * 65535.0 / 100.0))
    return encode_words((int(round(co2)), min(max(raw_t, 0), 0xFFFF), min(max(raw_rh, 0), 0xFFFF)))


class Scd40:
    """Starts periodic measurement on first use and keeps the last good reading between the
    sensor's 5 s measurements (CO2 changes over minutes); None after a failed read."""

    def __init__(self, hal):
        self.hal = hal
        self.started = False
        self.co2 = None
        self.errors = 0
        self.consecutive_errors = 0
        self.last_error = None

    def _start(self):
        try:
            self.hal.i2c_transfer(ADDRESS, command(START_PERIODIC_MEASUREMENT))
        except OSError:
            # A soft reset of the board leaves the sensor measuring, and a measuring SCD40 does
            # not acknowledge this command: if it answers the data-ready question, it is running.
            decode_words(self.hal.i2c_transfer(ADDRESS, command(GET_DATA_READY_STATUS), 3, COMMAND_DELAY_MS), 1)
        self.started = True

    def read(self, now=None):
        """The CO2 level in ppm (an int), the last one until the sensor has a new one; None on failure."""
        try:
            if not self.started:
                self._start()
            ready = self.hal.i2c_transfer(ADDRESS, command(GET_DATA_READY_STATUS), 3, COMMAND_DELAY_MS)
            if data_ready(ready):
                frame = self.hal.i2c_transfer(ADDRESS, command(READ_MEASUREMENT), 9, COMMAND_DELAY_MS)
                self.co2 = decode_measurement(frame)[0]
        except OSError:
            return self._failed("SCD40 not answering on I2C")
        except SensorFault as exc:
            return self._failed(str(exc))
        self.consecutive_errors = 0
        return self.co2

    def _failed(self, why):
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = why
        self.co2 = None
        self.started = False   # a sensor that was power-cycled must be started again
        return None
