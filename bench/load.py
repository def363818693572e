"""A small threaded HTTP load generator (http.client, one keep-alive connection per thread),
loopback only. Not requests: its per-request overhead in the client halved the rates measured
on these 2 cores, so the figure was the load generator's, not the server's.

``hammer(url, threads, seconds)`` runs ``threads`` clients that each send GETs back to back for
``seconds`` and returns a Sample: one latency per request, throughput = requests / seconds,
loss = requests that failed or did not answer 200.
"""
from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from bench.harness import Sample


def hammer(url: str, threads: int, seconds: float, timeout: float = 10.0) -> Sample:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures = [0] * threads
    start_gate = threading.Barrier(threads + 1)
    stop_at = [0.0]

    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        own, clock = latencies[index], time.perf_counter
        start_gate.wait()
        while clock() < stop_at[0]:
            t0 = clock()
            try:
                connection.request("GET", target)
                response = connection.getresponse()
                response.read()  # the body is part of the request's cost
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()  # the next request reconnects
            if ok:
                own.append(clock() - t0)
            else:
                failures[index] += 1
        connection.close()

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    start_gate.wait()
    for worker in workers:
        worker.join(seconds + timeout + 5)
    duration = time.perf_counter() - started
    flat = [x for own in latencies for x in own]
    return Sample(latencies_s=flat, sent=len(flat) + sum(failures), received=len(flat), duration_s=duration)
