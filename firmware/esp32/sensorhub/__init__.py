# sensorhub firmware package: copied to the board as /lib/sensorhub (see firmware/README.md).
# Every module except hal.py is free of hardware access and runs under CPython and MicroPython.
FIRMWARE_VERSION = "1.0.0"
