"""Every firmware driver against the simulated HAL (the same object the emulator runs on)."""
from __future__ import annotations

import json

import pytest

from firmware.emulator.physics import Room
from firmware.emulator.simhal import SimHal
from firmware.esp32.sensorhub import scd40
from firmware.esp32.sensorhub.battery import BatteryMonitor, percent_from_volts
from firmware.esp32.sensorhub.climate import Dht22, SensorFault, decode_dht22, encode_dht22
from firmware.esp32.sensorhub.led import Led
from firmware.esp32.sensorhub.motion import PirMotion
from firmware.esp32.sensorhub.protocol import CommandRefused
from firmware.esp32.sensorhub.schedule import TICKS_PERIOD, Periodic, ticks_add, ticks_diff
from firmware.esp32.sensorhub.settings import (
    SettingsStore,
    apply_calibration,
    apply_config,
    default_calibration,
    default_config,
    fraction_or_percent,
)
from firmware.esp32.sensorhub.sound import SILENCE_DBFS, SoundMeter, rms_dbfs
from firmware.esp32.sensorhub.window import ABS_MAX_US, WindowMotor, parse_target, pulse_us

CAL = default_calibration()


class Flag:
    def __init__(self):
        self.count = 0

    def set(self):
        self.count += 1


@pytest.fixture
def room():
    return Room(seed=1, motion_per_hour=0)


@pytest.fixture
def hal(room):
    return SimHal(room)


# --- DHT22 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("t, h", [(21.5, 40.2), (-12.3, 85.0), (0.0, 0.0), (79.9, 100.0)])
def test_dht22_frame_round_trip(t, h):
    assert decode_dht22(encode_dht22(t, h)) == (t, h)


def test_dht22_rejects_bad_checksum_and_short_frames():
    frame = bytearray(encode_dht22(21.5, 40.0))
    frame[4] ^= 1
    with pytest.raises(SensorFault, match="checksum"):
        decode_dht22(bytes(frame))
    with pytest.raises(SensorFault):
        decode_dht22(b"\x00\x01")


def test_dht22_reads_the_room_with_offsets_and_counts_failures(room, hal):
    room.set({"temperature": 24.0, "humidity": 50.0})
    dht = Dht22(hal, min_interval_ms=0)
    cal = dict(CAL, temperature_offset=-0.5, humidity_offset=2.0)
    assert dht.read(0, cal) == (23.5, 52.0)
    hal.sensor_faults["temperature"] = 2
    assert dht.read(10, cal) == (None, None)
    assert dht.read(20, cal) == (None, None)
    assert dht.errors == 2 and dht.consecutive_errors == 2 and "DHT22" in dht.last_error
    assert dht.read(30, cal) == (23.5, 52.0) and dht.consecutive_errors == 0


def test_dht22_is_not_read_faster_than_its_minimum_interval(room, hal):
    dht = Dht22(hal, min_interval_ms=2000)
    room.set({"temperature": 20.0})
    assert dht.read(0, CAL)[0] == 20.0
    room.set({"temperature": 30.0})
    assert dht.read(1999, CAL)[0] == 20.0     # cached: the sensor would answer garbage this soon
    assert dht.read(2000, CAL)[0] == 30.0


# --- PIR -------------------------------------------------------------------------------------

def test_pir_interrupt_wakes_the_task_and_hold_time_ends_motion(room, hal):
    flag = Flag()
    pir = PirMotion(hal, flag)
    assert pir.update(0, 1000) is None
    room.forced_motion = True
    room.step()
    hal.pir_changed()                       # what Pin.irq does on the edge
    assert flag.count == 1
    assert pir.update(10, 1000) == "motion_started"
    assert pir.update(20, 1000) is None
    room.forced_motion = False
    room.step()
    assert pir.update(100, 1000) is None     # low, but not for long enough yet
    assert pir.wait_hint_ms(600, 1000) == 500
    assert pir.update(1099, 1000) is None
    assert pir.update(1100, 1000) == "motion_stopped"
    assert pir.wait_hint_ms(1200, 1000) is None


def test_pir_low_blip_does_not_stop_motion(room, hal):
    pir = PirMotion(hal, Flag())
    room.forced_motion = True
    room.step()
    assert pir.update(0, 1000) == "motion_started"
    room.forced_motion = False
    room.step()
    assert pir.update(100, 1000) is None
    room.forced_motion = True
    room.step()
    assert pir.update(900, 1000) is None
    room.forced_motion = False
    room.step()
    assert pir.update(1500, 1000) is None    # the hold restarts from the new falling edge
    assert pir.update(2500, 1000) == "motion_stopped"


# --- battery ---------------------------------------------------------------------------------

def test_battery_divider_and_discharge_curve(room, hal):
    room.set({"battery_v": 3.92})
    volts, pct = BatteryMonitor(hal).read()
    assert volts == pytest.approx(3.92, abs=0.02) and 66 <= pct <= 74
    assert percent_from_volts(4.3) == 100 and percent_from_volts(3.0) == 0
    assert percent_from_volts(3.79) == 50
    hal.sensor_faults["battery"] = 1
    monitor = BatteryMonitor(hal)
    assert monitor.read() == (None, None) and monitor.errors == 1


def test_battery_discharges_over_time():
    clock = [1000.0]
    room = Room(seed=2, battery_drain_v_per_h=0.1, clock=lambda: clock[0])
    start = room.battery_v()
    clock[0] += 3600
    assert room.battery_v() == pytest.approx(start - 0.1)


# --- microphone ------------------------------------------------------------------------------

@pytest.mark.parametrize("level", [-20.0, -40.0, -60.0])
def test_sound_meter_measures_the_rms_level_in_dbfs(room, hal, level):
    room.set({"sound_dbfs": level})
    meter = SoundMeter(hal)
    assert meter.sample() == pytest.approx(level, abs=0.5)


def test_sound_silence_and_failures(hal):
    assert rms_dbfs([5] * 100) == SILENCE_DBFS        # DC offset only is silence
    assert rms_dbfs([]) == SILENCE_DBFS
    hal.sensor_faults["sound_level"] = 1
    meter = SoundMeter(hal)
    assert meter.sample() is None and meter.errors == 1


def test_room_is_louder_during_motion(room, hal):
    meter = SoundMeter(hal)
    quiet = meter.sample()
    room.forced_motion = True
    room.step()
    assert meter.sample() > quiet + 10


# --- LED -------------------------------------------------------------------------------------

def test_led_applies_colour_and_brightness(hal):
    led = Led(hal)
    state = led.apply({"state": "on", "color": "#ff8000", "brightness": 128})
    assert state == {"state": "on", "color": "#ff8000", "brightness": 128, "blink": 0}
    assert hal.led == (128, 64, 0)
    assert led.apply({"blink": True})["blink"] == 500
    led.apply({"state": "off"})
    assert hal.led == (0, 0, 0)


@pytest.mark.parametrize("cmd", [{}, {"state": "dim"}, {"brightness": -1}, {"blink": 10}, {"color": "#12345"},
                                 {"state": "off", "brightness": 256}])
def test_led_refuses_bad_values_and_changes_nothing(hal, cmd):
    led = Led(hal)
    led.apply({"state": "on", "color": "#010203"})
    before = led.state()
    with pytest.raises(CommandRefused):
        led.apply(cmd)
    assert led.state() == before


# --- window motor ----------------------------------------------------------------------------

def test_pulse_mapping_respects_calibration_invert_and_absolute_limits():
    assert pulse_us(0, CAL) == 1000 and pulse_us(100, CAL) == 2000 and pulse_us(50, CAL) == 1500
    assert pulse_us(0, dict(CAL, invert=True)) == 2000
    wild = dict(CAL, min_us=100, max_us=5000)
    assert pulse_us(100, wild) == ABS_MAX_US


def test_window_move_is_smooth_and_takes_time(hal):
    motor = WindowMotor(hal, dict(CAL, speed_pct_s=50.0), now=0)
    assert motor.move_to(100, 0) == 100
    assert motor.duration_ms == 2000
    positions = []
    for t in range(0, 2001, 100):
        motor.tick(t)
        positions.append(motor.position)
    assert positions == sorted(positions) and positions[-1] == 100.0
    steps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    assert steps[0] < steps[len(steps) // 2] and steps[-1] < steps[len(steps) // 2]   # eases in and out
    assert hal.servo_us == 2000 and not motor.moving
    motor.tick(2000 + 600)
    assert hal.servo_us is None     # detached after the move


def test_window_stop_retarget_and_soft_limit(hal):
    motor = WindowMotor(hal, dict(CAL, speed_pct_s=10.0, max_open=80), now=0)
    motor.move_to(60, 0)
    motor.tick(3000)
    assert motor.stop(3000) is True
    assert not motor.moving and motor.target == int(motor.position) and 0 < motor.position < 60
    assert motor.end_reason == "stop"
    assert motor.move_to(100, 4000) == 80 and motor.end_reason == "limit"


def test_window_target_parsing():
    assert parse_target({"position": 42}) == 42
    assert parse_target({"position": 42.6}) == 43
    assert parse_target({"stop": True}) is None and parse_target({"position": "stop"}) is None
    for bad in ({"position": 140}, {"position": -1}, {"position": True}, {"position": "50"}, {}):
        with pytest.raises(CommandRefused):
            parse_target(bad)
    assert fraction_or_percent("0.5") == 50 and fraction_or_percent("50") == 50 and fraction_or_percent("1.0") == 100


# --- schedule and settings -------------------------------------------------------------------

def test_periodic_does_not_drift_and_skips_or_bursts_missed_periods():
    p = Periodic(100, now=0)
    assert p.delay_ms(30) == 70 and p.due(99) == 0
    assert p.due(105) == 1 and p.delay_ms(105) == 95     # next at 200, not 205
    assert p.due(550) == 1 and p.missed == 3              # 200, 300, 400, 500 due: one fires
    burst = Periodic(1, now=0, max_burst=50)
    assert burst.due(10) == 10


def test_ticks_wrap_like_micropython():
    near_end = TICKS_PERIOD - 5
    assert ticks_add(near_end, 10) == 5 and ticks_diff(5, near_end) == 10
    p = Periodic(10, now=near_end)
    assert p.due(ticks_add(near_end, 10)) == 1


def test_settings_validation_and_persistence(hal):
    store = SettingsStore(hal)
    assert store.load() == (default_config(), default_calibration())
    config = apply_config(default_config(), {"interval_ms": 1000, "thresholds": {"low_battery": 20}})
    calibration = apply_calibration(default_calibration(), {"min_us": 700})
    store.save(config, calibration)
    assert store.load() == (config, calibration)
    with pytest.raises(CommandRefused, match="led_mode"):
        apply_config(config, {"interval_ms": 10, "led_mode": "disco"})
    hal.write_file("config.json", "{not json")
    assert store.load() == (default_config(), default_calibration())   # a corrupt file never blocks boot
    hal.write_file("config.json", json.dumps({"config": {"interval_ms": -5}}))
    assert store.load()[0] == default_config()


# --- SCD40 (CO2 over I2C) ---------------------------------------------------------------------

def test_scd40_crc_is_sensirions():
    assert scd40.crc8(b"\xbe\xef") == 0x92  # the datasheet's example
    assert scd40.crc8(b"\x00\x00") == 0x81


@pytest.mark.parametrize("co2, t, h", [(400, 21.5, 40.0), (0, -10.0, 0.0), (40000, 60.0, 100.0)])
def test_scd40_measurement_round_trip(co2, t, h):
    got_co2, got_t, got_h = scd40.decode_measurement(scd40.encode_measurement(co2, t, h))
    assert got_co2 == co2 and abs(got_t - t) < 0.01 and abs(got_h - h) < 0.01


def test_scd40_refuses_a_corrupted_or_short_frame():
    frame = bytearray(scd40.encode_measurement(800, 21.0, 40.0))
    frame[4] ^= 0x10  # a flipped bit in the temperature word
    with pytest.raises(SensorFault, match="CRC mismatch in word 1"):
        scd40.decode_measurement(bytes(frame))
    with pytest.raises(SensorFault, match="9 bytes"):
        scd40.decode_measurement(bytes(frame[:6]))
    assert scd40.data_ready(scd40.encode_words((0x8006,))) is True
    assert scd40.data_ready(scd40.encode_words((0x8000,))) is False


def test_scd40_reads_the_room_and_counts_failures(room, hal):
    sensor = scd40.Scd40(hal)
    room.set({"co2": 1450})
    assert sensor.read() == 1450 and sensor.started
    hal.sensor_faults["co2"] = 1
    assert sensor.read() is None and sensor.errors == 1 and "not answering" in sensor.last_error
    room.set({"co2": 1500})
    assert sensor.read() == 1500 and sensor.consecutive_errors == 0  # started again after the failure


def test_scd40_keeps_the_last_reading_until_the_next_measurement(room):
    hal = SimHal(room)
    hal.i2c[scd40.ADDRESS].period_s = 3600.0  # a measurement far in the future
    sensor = scd40.Scd40(hal)
    room.set({"co2": 900})
    assert sensor.read() is None  # measuring, nothing ready yet
    hal.i2c[scd40.ADDRESS].period_s = 0.0
    assert sensor.read() == 900
    hal.i2c[scd40.ADDRESS].period_s = 3600.0
    room.set({"co2": 2000})
    assert sensor.read() == 900  # the sensor has no new measurement: the last one stays


def test_scd40_already_measuring_after_a_board_reset_is_taken_as_started(room, hal):
    hal.i2c_transfer(scd40.ADDRESS, scd40.command(scd40.START_PERIODIC_MEASUREMENT))
    with pytest.raises(OSError):  # what the real sensor does: no acknowledgement while measuring
        hal.i2c_transfer(scd40.ADDRESS, scd40.command(scd40.START_PERIODIC_MEASUREMENT))
    room.set({"co2": 1100})
    assert scd40.Scd40(hal).read() == 1100


def test_room_co2_rises_while_someone_is_there():
    clock = [0.0]
    room = Room(seed=3, motion_per_hour=0, clock=lambda: clock[0])
    before = room.co2
    room.forced_motion = True
    for _ in range(60):
        clock[0] += 60.0
        room.step()
    assert room.co2 > before + 300
    room.forced_motion = False
    for _ in range(120):
        clock[0] += 60.0
        room.step()
    assert room.co2 < 600
