"""Whether the trial may serve now, and why not: a pure decision.

``trial_status(licence, error, usage, tampered, now)`` gives one
:class:`TrialStatus`, checked in this order:

- ``invalid``: the licence did not verify (malformed, unknown key, bad
  signature, claims that make no provider); no trial provider exists;
- ``tampered``: the usage state failed its integrity check; the trial is held
  (fail closed) until an operator removes ``state_dir/trial-state``;
- ``not_yet_valid`` / ``expired``: outside the licence's validity period;
- ``superseded``: a licence issued later was already used here;
- ``exhausted``: ``tokens_used >= token_limit``;
- ``active``: the provider takes requests.

Every phase but ``active`` holds the provider out of routing, with the
message as the router's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pooldaemon.errors import LicenceError
from pooldaemon.trial._licence import Licence, iso
from pooldaemon.trial._state import TrialUsage

__all__ = ["TrialPhase", "TrialStatus", "trial_status"]


class TrialPhase(StrEnum):
    active = "active"
    invalid = "invalid"
    tampered = "tampered"
    not_yet_valid = "not_yet_valid"
    expired = "expired"
    superseded = "superseded"
    exhausted = "exhausted"


@dataclass(frozen=True, slots=True)
class TrialStatus:
    """The trial's phase and a one-line message saying why (never a secret)."""

    phase: TrialPhase
    message: str
    licence: Licence | None = None
    tokens_used: int = 0

    @property
    def active(self) -> bool:
        return self.phase is TrialPhase.active

    def to_json(self) -> dict[str, object]:
        """For the admin status (the licence's key is never part of it)."""
        lic = self.licence
        return {
            "phase": str(self.phase),
            "message": self.message,
            "provider": lic.provider if lic else None,
            "licence_id": lic.id if lic else None,
            "kid": lic.kid if lic else None,
            "subject": lic.subject if lic else None,
            "model": lic.model if lic else None,
            "token_limit": lic.token_limit if lic else None,
            "tokens_used": self.tokens_used if lic else None,
            "tokens_left": max(lic.token_limit - self.tokens_used, 0) if lic else None,
            "issued_at": iso(lic.issued_at) if lic else None,
            "expires_at": iso(lic.expires_at) if lic else None,
        }


def trial_status(
    licence: Licence | None,
    error: LicenceError | None,
    usage: TrialUsage,
    tampered: str | None,
    now: float,
) -> TrialStatus:
    """The status of the configured licence (``error`` when it did not verify)."""
    if licence is None:
        reason = str(error) if error is not None else "no trial licence"
        return TrialStatus(TrialPhase.invalid, f"{reason}; no trial provider")
    used = usage.used(licence.id)
    if tampered is not None:
        message = f"{tampered}; the trial is disabled until an operator removes that file"
        return TrialStatus(TrialPhase.tampered, message, licence, used)
    problem = licence.time_problem(now)
    if problem is not None:
        return TrialStatus(TrialPhase(problem.kind), str(problem), licence, used)
    newer = usage.superseded_by(licence)
    if newer is not None:
        message = (
            f"trial licence {licence.id} (issued {iso(licence.issued_at)}) is older than a "
            f"licence already used here (issued {iso(newer)}); refused"
        )
        return TrialStatus(TrialPhase.superseded, message, licence, used)
    limit = licence.token_limit
    if used >= limit:
        message = f"trial licence {licence.id} exhausted: {used} of {limit} tokens used"
        return TrialStatus(TrialPhase.exhausted, message, licence, used)
    message = (
        f"trial licence {licence.id} active: {used} of {limit} tokens used, "
        f"expires {iso(licence.expires_at)}"
    )
    return TrialStatus(TrialPhase.active, message, licence, used)
