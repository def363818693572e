"""Reading the bridge's health report (``<run_dir>/bridge-health.json``, written by
bridge/health.py): for the container's HEALTHCHECK (scripts/healthcheck.py) and for the
aggregator's ``/health`` and ``/metrics``, so that an operator with curl sees the broker link too.

The bridge has no HTTP port of its own; the aggregator only *reads* this file, it never calls the
bridge, so the dependency still points one way (the bridge follows the aggregator).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FILE_NAME = "bridge-health.json"
STALE_AFTER_S = 30.0


def health_file(run_dir: Path) -> Path:
    return run_dir / FILE_NAME


def bridge_problems(run_dir: Path, now: float | None = None) -> list[str]:
    """Why the bridge is not healthy, from its file; an empty list when it is."""
    path = health_file(run_dir)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"mqtt_bridge: no health report yet ({path})"]
    except (OSError, ValueError) as exc:
        return [f"mqtt_bridge: unreadable health report {path}: {exc}"]
    age = (time.time() if now is None else now) - float(report.get("written", 0))
    problems = []
    if age > STALE_AFTER_S:
        problems.append(f"mqtt_bridge: health report is {age:.0f} s old (the bridge is hung or stopped)")
    if not report.get("mqtt_connected"):
        line = f"mqtt_bridge: not connected to the broker {report.get('broker', '')}".rstrip()
        reason = (report.get("broker_link") or {}).get("reason")
        problems.append(f"{line}: {reason}" if reason else line)
    if not report.get("aggregator_ready"):
        problems.append("mqtt_bridge: the state aggregator has not answered")
    outbox = report.get("outbox") or {}
    if outbox.get("problem"):  # still delivering, but a restart now would lose what memory holds
        problems.append(f"mqtt_bridge: outbox: {outbox['problem']}; {outbox.get('pending', 0)} message(s) "
                        "held in memory only")
    return problems


def bridge_notes(run_dir: Path) -> list[str]:
    """What the bridge got over by itself but an operator should know (not a reason to be unhealthy)."""
    try:
        report = json.loads(health_file(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # bridge_problems says so
    return [f"mqtt_bridge: an unreadable outbox file was set aside as {path} (kept for inspection)"
            for path in (report.get("outbox") or {}).get("set_aside", [])]


def broker_link(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    """The broker link as the bridge last reported it: ``connected`` (None when there is no
    current report: the bridge is not running, or hung), the broker, why it is down, and the
    outbox (``pending``: messages not yet delivered)."""
    try:
        report = json.loads(health_file(run_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"connected": None, "reason": "no report from the bridge (is it running?)"}
    except (OSError, ValueError) as exc:
        return {"connected": None, "reason": f"unreadable bridge report: {exc}"}
    age = (time.time() if now is None else now) - float(report.get("written", 0))
    link: dict[str, Any] = {"connected": bool(report.get("mqtt_connected")), "broker": report.get("broker"),
                            "report_age_s": round(age, 1)}
    outbox = report.get("outbox")
    if isinstance(outbox, dict):  # messages not yet delivered to the broker, and where they wait
        link["outbox"] = {"pending": outbox.get("pending"), "on_disk": outbox.get("on_disk"),
                          "problem": outbox.get("problem")}
    if age > STALE_AFTER_S:
        link.update(connected=None, reason=f"the bridge's report is {age:.0f} s old (hung or stopped)")
    elif not link["connected"]:
        link["reason"] = (report.get("broker_link") or {}).get("reason") or "not connected"
    return link
