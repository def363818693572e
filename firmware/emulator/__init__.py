"""CPython emulator of a sensorhub ESP32 board on a pseudo-terminal (`python -m firmware.emulator`)."""
