"""Serial handler: ESP32 boards over USB serial (python -m services.serial_handler)."""
