# One instance = one container; supervisord is PID 1 (IoT2MQTT contract §4).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    IOT2MQTT_PATH=/app \
    CONNECTOR_TYPE=sensor-hub

WORKDIR /app

# torch is pinned to a CPU build: the default index would pull a multi-GB CUDA build.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt

COPY shared/ shared/
COPY services/ services/
COPY bridge/ bridge/
COPY firmware/ firmware/
COPY scripts/ scripts/
COPY mqtt_bridge.py supervisord.conf setup.json manifest.json ./
RUN mkdir -p /app/instances /app/data

# The platform mounts instances/ and data/; the internal service ports are not exposed.
VOLUME ["/app/data"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "scripts.healthcheck"]

CMD ["supervisord", "-n", "-c", "/app/supervisord.conf"]
