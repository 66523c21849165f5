"""Trial licences: signed grants of a trial provider with a token limit.

A licence (``base64url(claims).base64url(Ed25519 signature)``, :mod:`._licence`)
verified against trusted public keys (:mod:`._keys`) adds one provider to the
pool (:mod:`._provider`); the tokens it serves are counted against the
licence's limit in an HMAC-protected state file (:mod:`._state`); its status
(:mod:`._status`) holds the provider out of routing once expired, used up,
superseded or when the state was tampered with. :class:`Trial` (:mod:`._trial`)
wires that into a running daemon; ``pooldaemon license`` (:mod:`._cli`) makes
keys and licences.
"""

from __future__ import annotations

from pooldaemon.trial._keys import (
    generate_private_key,
    key_id,
    load_private_key,
    load_trusted_keys,
    parse_private_key,
    parse_public_key,
    private_key_text,
    public_key_text,
)
from pooldaemon.trial._licence import CLOCK_SKEW, Licence, sign, verify
from pooldaemon.trial._provider import KEY_LABEL, trial_provider, with_trial
from pooldaemon.trial._state import (
    TRIAL_STATE,
    LicenceUsage,
    TrialUsage,
    decode_state,
    encode_state,
    load_state,
    save_state,
)
from pooldaemon.trial._status import TrialPhase, TrialStatus, trial_status
from pooldaemon.trial._trial import FLUSH_INTERVAL, Trial

__all__ = [
    "CLOCK_SKEW",
    "FLUSH_INTERVAL",
    "KEY_LABEL",
    "TRIAL_STATE",
    "Licence",
    "LicenceUsage",
    "Trial",
    "TrialPhase",
    "TrialStatus",
    "TrialUsage",
    "decode_state",
    "encode_state",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_state",
    "load_trusted_keys",
    "parse_private_key",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
    "save_state",
    "sign",
    "trial_provider",
    "trial_status",
    "verify",
    "with_trial",
]
