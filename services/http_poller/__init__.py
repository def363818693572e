"""The HTTP poller: network sensors (ESPHome, Shelly, Tasmota, our firmware's HTTP mode, any
JSON URL) polled on one schedule and served through the handler API (docs/rest-api.md)."""
