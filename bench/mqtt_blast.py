"""`python -m bench.mqtt_blast PORT QOS COUNT TOPIC`: publish COUNT messages as fast as paho takes them.

A separate process, like the bridge is, so the throughput ceiling is not one process's GIL.
Each payload is ``<key> <perf_counter>``: on Linux ``time.perf_counter`` is CLOCK_MONOTONIC,
shared by every process on the machine, so the receiver can compute latencies from it.
"""
from __future__ import annotations

import sys
import threading
import time

import paho.mqtt.client as mqtt

from bench.fixtures import no_delay


def main(argv: list[str]) -> int:
    port, qos, count, topic = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-blast-{port}-{qos}")
    client.max_inflight_messages_set(1000)
    connected, acked = threading.Event(), threading.Event()
    pending = {"n": count}

    def on_publish(c, u, mid, rc, p):
        pending["n"] -= 1
        if pending["n"] <= 0:
            acked.set()

    def on_connect(c, u, f, rc, p):
        no_delay(c)
        connected.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        print("error: cannot connect", file=sys.stderr)
        return 1
    clock = time.perf_counter
    for key in range(count):
        client.publish(topic, f"{key} {clock()}", qos=qos)
    acked.wait(60)
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
