# sensor-hub — the two commands a fresh machine needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
INSTANCE_NAME ?= sensor_hub_01
export INSTANCE_NAME

.PHONY: run test lint bench bench-full soak fuzz check-config mosquitto nats-server micropython browser docs clean help image container-test docker check-ha-schemas

help:
	@echo "make run          the whole connector locally (emulated ESP32, private broker unless MQTT_HOST is set)"
	@echo "make test         install what is needed, then run the test suite"
	@echo "make lint         ruff"
	@echo "make bench        quick performance report (bench/results/latest.md)"
	@echo "make check-config validate instances/\$$INSTANCE_NAME.json"
	@echo "make check-ha-schemas  HA discovery payloads through Home Assistant's own schemas (side venv, optional)"
	@echo "make image        build the container image (sensor-hub:latest)"
	@echo "make container-test  build the image and run it as IoT2MQTT does (two instances, stop, recovery)"

# The venv is rebuilt when a requirements file changes (the stamp records the last install).
$(VENV)/.runtime-installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

mosquitto:
	@scripts/ensure-mosquitto

# The second broker of the contract tests (tests/bridge/test_contract.py, docs/mqtt.md "Brokers").
nats-server:
	@scripts/ensure-nats-server

# MicroPython's WebAssembly port under Node.js: runs the hardware-free firmware modules
# under real MicroPython in the tests.
micropython:
	@scripts/ensure-micropython

# Debian's chromium and playwright-core (npm, under .browser/): the status page's browser tests
# and its bench figure.
browser:
	@scripts/ensure-chromium

run: $(VENV)/.runtime-installed
	@if [ -z "$$MQTT_HOST" ]; then scripts/ensure-mosquitto; fi
	$(PY) -m scripts.run_local

test: $(VENV)/.dev-installed mosquitto nats-server micropython browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.dev-installed mosquitto browser
	$(PY) -m bench --quick --profile

bench-full: $(VENV)/.dev-installed mosquitto browser
	$(PY) -m bench --full --profile

soak: $(VENV)/.dev-installed mosquitto
	$(PY) -m pytest -m soak -o addopts="-ra --strict-markers" -o timeout=3600 tests/soak

# The property-based tests (hypothesis) with many more examples than `make test` runs.
fuzz: $(VENV)/.dev-installed
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest $$(grep -rl --include='test_*.py' 'from hypothesis' tests)

docker:
	@scripts/ensure-docker

# The Dockerfile, built by the machine's Docker engine, or by a private one started for it
# (scripts/image.py says which base image and torch wheel it used).
image: $(VENV)/.runtime-installed docker
	$(PY) -m scripts.image build --tag $(or $(IMAGE),sensor-hub:latest)

# The image run the way IoT2MQTT runs it (tests/container); .ci/run runs it after `make test`.
container-test: $(VENV)/.dev-installed mosquitto docker
	$(PY) -m pytest -m container -o addopts="-ra --strict-markers" -o timeout=900 tests/container $(PYTEST_ARGS)

# Optional, not part of `make test`: the discovery payloads through Home Assistant's own schemas,
# in a side venv (HA needs Python >= 3.13; HA_PYTHON names one, HA_VERSION the release).
HA_PYTHON ?= $(shell command -v python3.13 || ls $$HOME/.pyenv/versions/3.13*/bin/python 2>/dev/null | tail -1)
HA_VERSION ?= 2025.4.*
HA_VENV := .ha-venv
check-ha-schemas: $(VENV)/.dev-installed
	@test -x $(HA_VENV)/bin/python || $(HA_PYTHON) -m venv $(HA_VENV)
	@$(HA_VENV)/bin/python -c 'import homeassistant' 2>/dev/null || \
		$(HA_VENV)/bin/pip install --quiet --disable-pip-version-check "homeassistant==$(HA_VERSION)"
	$(PY) -m scripts.ha_schema_check dump > $(HA_VENV)/discovery.json
	$(HA_VENV)/bin/python scripts/ha_schema_check.py check $(HA_VENV)/discovery.json

check-config: $(VENV)/.runtime-installed
	$(PY) -m shared.config check instances/$(INSTANCE_NAME).json

docs: $(VENV)/.runtime-installed
	$(PY) -m scripts.update_readme

clean:
	rm -rf data/run .pytest_cache
