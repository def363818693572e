"""The window automation's policy: the one place that decides what a recommendation means for
the window (docs/automation.md, "The policy").

The state aggregator collects the facts (the inputs, where the window is, the last command a
person gave it) and carries out the answer; it decides nothing itself. Everything that decides
— the position limits, the smallest change worth a move, the confidence threshold, the mode and
the hold-off after a manual command — is here, in ``decide``, a pure function.

Actions, in the order they are checked:

``off``      the automation's mode is off in the instance config: nothing is done.
``wait``     the window is offline, or moving: ask again once it is still.
``hold``     a person commanded the window less than ``manual_hold`` seconds ago (and the
             automation was not switched on since): the user is in charge.
``stay``     the window is already within ``min_change`` of the target.
``suggest``  a move would be worth it, but the confidence is below the threshold, or the
             automation is in suggest mode (its switch is off): published, not carried out.
``move``     move the window to ``position``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.clock import iso_at
from shared.config import AutomationSpec

from .recommender import Recommendation

MOVE, STAY, SUGGEST, HOLD, WAIT, OFF = "move", "stay", "suggest", "hold", "wait", "off"


@dataclass(frozen=True)
class WindowFacts:
    """Where the window is, as the aggregator knows it (``position`` None: not known yet)."""

    position: float | None = None
    moving: bool = False
    online: bool = True


@dataclass(frozen=True)
class ManualCommand:
    """The last command a person gave the window: when (epoch seconds) and its id."""

    at: float
    cmd_id: str | None = None


@dataclass(frozen=True)
class Decision:
    action: str
    position: int
    reason: str
    held_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"action": self.action, "position": self.position, "reason": self.reason}
        if self.held_until is not None:
            body["held_until"] = iso_at(self.held_until, timespec="seconds")
        return body


def target_position(spec: AutomationSpec, recommendation: Recommendation) -> int:
    """The recommendation as a whole percent within the automation's limits."""
    return min(max(round(recommendation.position), spec.min_position), spec.max_position)


def decide(spec: AutomationSpec, mode: str, recommendation: Recommendation, window: WindowFacts,
           manual: ManualCommand | None, resumed_at: float, confidence_threshold: float, now: float) -> Decision:
    """What the automation should do now. ``mode`` is ``auto``, ``suggest`` or ``off``;
    ``resumed_at`` is when the automation was last switched on (a hold from before it is over)."""
    target = target_position(spec, recommendation)
    if mode == OFF:
        return Decision(OFF, target, "the automation's mode is off in the instance config")
    if not window.online:
        return Decision(WAIT, target, f"{spec.window} is offline")
    if window.moving:
        return Decision(WAIT, target, f"{spec.window} is moving")
    if manual is not None and manual.at > resumed_at and now - manual.at < spec.manual_hold:
        by = f" (command {manual.cmd_id})" if manual.cmd_id else ""
        return Decision(HOLD, target, f"{spec.window} was commanded by hand {now - manual.at:.0f} s ago{by}; "
                        f"automatic moves resume {spec.manual_hold:g} s after it",
                        held_until=manual.at + spec.manual_hold)
    if window.position is not None and abs(target - window.position) < spec.min_change:
        return Decision(STAY, target, f"{spec.window} is at {window.position:g} %, within min_change "
                        f"{spec.min_change:g} of {target} %")
    if recommendation.confidence < confidence_threshold:
        return Decision(SUGGEST, target, f"confidence {recommendation.confidence:.2f} is below the threshold "
                        f"{confidence_threshold:g}")
    if mode != "auto":
        return Decision(SUGGEST, target, "the automation only suggests (its switch is off)")
    where = "an unknown position" if window.position is None else f"{window.position:g} %"
    return Decision(MOVE, target, f"open {spec.window} to {target} % (from {where}, confidence "
                    f"{recommendation.confidence:.2f})")
