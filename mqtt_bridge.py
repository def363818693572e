"""``python mqtt_bridge.py``: the connector's face on MQTT (IoT2MQTT contract + Home Assistant).

Everything lives in the ``bridge`` package; this file only loads settings, sets up logging
and runs the bridge until SIGTERM (docs/mqtt.md).
"""
from __future__ import annotations

import sys

from shared.config import load_settings_or_exit
from shared.exiting import exit_now
from shared.heap import settle_after_start
from shared.logs import setup_logging
from shared.malloc import limit_arenas


def main() -> int:
    settings = load_settings_or_exit("mqtt_bridge")
    setup_logging("mqtt_bridge", level=settings.log_level, fmt=settings.log_format,
                  secrets=[settings.mqtt.password or "", settings.api_token.value if settings.api_token else ""])
    limit_arenas()  # before any thread (shared/malloc.py)
    from bridge.bridge import MqttBridge  # after logging, so import-time messages are formatted

    bridge = MqttBridge(settings)
    settle_after_start()  # the device table and the topics are built: kept for good (shared/heap.py)
    bridge.run_forever()
    if bridge.abandoned_commands:  # their threads would hold the exit until their HTTP timeouts
        exit_now(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
