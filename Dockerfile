# sensor-hub: one instance = one container; supervisord is PID 1 (docs/container.md).
#
# The IoT2MQTT platform owns /app: it mounts its own shared/ at /app/shared, the instances at
# /app/instances and its .env at /app/.env (all read-only). Our code therefore lives in
# /opt/sensor-hub, where no mount can hide it; /app keeps only the platform's paths and the
# writable data volume /app/data.
#
# Defaults are what a user's machine needs. `make image` (and the container tests) name another
# base image and wheel source through the build arguments below.
ARG BASE_IMAGE=python:3.11-slim

# The programs, byte-compiled here (the root file system may be read-only at run time) and
# copied into the image in one layer below. Only what .dockerignore lets in: no tests,
# firmware, benchmarks or docs.
FROM ${BASE_IMAGE} AS code
COPY . /opt/sensor-hub/app/
RUN python3 -m compileall -q /opt/sensor-hub/app

FROM ${BASE_IMAGE}

# pip arguments that decide where torch comes from: its CPU wheel index by default (PyPI's
# torch is a multi-GB CUDA build); a local wheel with "--find-links URL" (its local version,
# 2.13.0+cpu, ranks above PyPI's 2.13.0, and its own dependencies still come from PyPI).
ARG TORCH_SOURCE="--index-url https://download.pytorch.org/whl/cpu"
# Extra pip arguments for the other requirements (e.g. "--find-links URL"); none by default.
ARG PIP_SOURCE=""
ARG SENSOR_HUB_UID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SENSOR_HUB_HOME=/opt/sensor-hub \
    PATH=/opt/sensor-hub/venv/bin:$PATH \
    IOT2MQTT_PATH=/app \
    CONNECTOR_TYPE=sensor-hub \
    MODE=production \
    DATA_DIR=/app/data \
    SENSOR_HUB_RUN_DIR=/tmp/sensor-hub \
    SENSOR_HUB_BUNDLED_MODEL=/opt/sensor-hub/models/window.pt

# The user the programs run as: not root, in dialout so that boards passed with --device open.
# /app/data belongs to it, so a named volume created from the image is writable.
RUN groupadd --system --gid ${SENSOR_HUB_UID} sensorhub \
 && useradd --system --uid ${SENSOR_HUB_UID} --gid sensorhub --groups dialout \
      --home-dir /app/data --no-create-home --shell /usr/sbin/nologin sensorhub \
 && mkdir -p /app/data /app/instances \
 && chown sensorhub:sensorhub /app/data

# Image settings before the big layers: with Docker's vfs storage driver every later step copies
# the whole file system.
WORKDIR /opt/sensor-hub/app
VOLUME ["/app/data"]

# Every program running, each service's /health, and the bridge's broker link (scripts/healthcheck.py).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "scripts.healthcheck"]

# Checks the instance file and the ports, then execs supervisord (PID 1).
CMD ["python", "-m", "scripts.container_start"]

# One layer for every dependency: torch first, from TORCH_SOURCE, so that the requirements'
# torch==2.13.0 is already satisfied and never fetched from PyPI.
COPY requirements.txt /opt/sensor-hub/requirements.txt
RUN python3 -m venv /opt/sensor-hub/venv \
 && pip install ${TORCH_SOURCE} torch==2.13.0 \
 && pip install ${PIP_SOURCE} -r /opt/sensor-hub/requirements.txt

COPY --from=code /opt/sensor-hub/app /opt/sensor-hub/app
# The window model's default weights, trained once here: a new instance copies them into its data
# volume instead of training at its first start (seconds here, minutes on a small board).
RUN python -m services.ml_inference.train --out /opt/sensor-hub/models/window.pt \
 && chmod 0644 /opt/sensor-hub/models/window.pt
USER sensorhub
