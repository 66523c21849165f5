"""Reconcile status, like Flux: conditions, revisions and a short history."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Condition", "HistoryEntry", "ReconcileStatus"]

ConditionType = Literal["Ready", "Reconciling", "Degraded"]
Result = Literal["success", "failure", "unchanged"]


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str
    last_transition: float  # unix time of the last change of ``status``


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    revision: str  # sha256 of the file content attempted
    result: Result
    trigger: str  # start, watch, poll, sighup, admin
    started: float
    duration_s: float
    summary: str  # the plan summary, or the error


@dataclass(slots=True)
class ReconcileStatus:
    """Mutable on the event loop; read by the admin API and ``pooldaemon status``."""

    conditions: dict[str, Condition] = field(default_factory=dict)
    applied_revision: str = ""
    attempted_revision: str = ""
    errors: tuple[str, ...] = ()  # FILE:LINE:COL: path: message of the last failure
    history: deque[HistoryEntry] = field(default_factory=lambda: deque(maxlen=10))
    reloads: dict[str, int] = field(default_factory=dict)  # result -> count
    last_successful: bool = True
    last_success_time: float = 0.0

    def set(self, kind: ConditionType, status: bool, reason: str, message: str, now: float) -> None:
        old = self.conditions.get(kind)
        since = old.last_transition if old is not None and old.status == status else now
        self.conditions[kind] = Condition(kind, status, reason, message, since)

    def record(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        self.reloads[entry.result] = self.reloads.get(entry.result, 0) + 1
        if entry.result != "failure":
            self.last_successful = True
            self.last_success_time = entry.started + entry.duration_s
        else:
            self.last_successful = False

    def to_json(self) -> dict[str, Any]:
        return {
            "conditions": [asdict(c) for c in self.conditions.values()],
            "applied_revision": self.applied_revision,
            "attempted_revision": self.attempted_revision,
            "errors": list(self.errors),
            "history": [asdict(h) for h in reversed(self.history)],
        }
