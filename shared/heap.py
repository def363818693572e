"""The Python heap after start: what every program builds once is set aside from the collector.

Measured with bench ``e2e_scale_5000_devices`` (a ``gc.callbacks`` probe in the aggregator and the
bridge): a full (generation 2) collection walks every object the program holds, and with 5,000
devices that is the settings, the device table, the registry, the caches and every module: 15 to
55 ms with the GIL held, two to four times in a 15 s run in each program, each one delaying every
reading on its way to MQTT meanwhile. ``gc.freeze()`` moves what exists at the end of the start to
a generation the collector never walks again, so a full collection costs only what was made since.

The collector was a part of the tail, not most of it (docs/architecture.md, "Scale"). A larger
first threshold (10,000 instead of 700) was measured too and left out: young collections became
fewer but up to 27 ms each.
"""
from __future__ import annotations

import gc

_settled = False


def settle_after_start() -> bool:
    """Collect what the start left as garbage, then freeze what remains. Call it once the program
    has built everything it keeps (settings, device table, caches), before it serves. Later calls
    do nothing; returns whether this one did it."""
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()
    gc.freeze()
    return True
