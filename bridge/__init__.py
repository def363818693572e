"""The MQTT bridge: the only MQTT client of the connector (see docs/mqtt.md)."""
