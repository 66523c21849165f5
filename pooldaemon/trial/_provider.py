"""What a verified licence adds to the pool: one provider, derived from its claims.

Pure. The provider's id is the ``provider`` claim (default ``trial``), its
``base_url`` and ``format`` are the ``url`` and ``format`` claims, its one key
is the ``key`` claim (labelled ``trial licence``, so plans and status name it
by that label, never by value), and the ``model`` claim, when there is one, is
declared so it routes before any catalog refresh. Otherwise it is an ordinary
provider (priority 0, location guessed from the URL, models discovered).

The provider is added to the spec *after* the YAML was validated
(:func:`with_trial`), so aliases and pricing entries of the YAML cannot name it
(``trial/model`` still routes: the snapshot indexes every provider's models).
"""

from __future__ import annotations

from pydantic import ValidationError

from pooldaemon.errors import LicenceError
from pooldaemon.spec import PoolSpec, ProviderSpec
from pooldaemon.trial._licence import Licence

__all__ = ["KEY_LABEL", "trial_provider", "with_trial"]

KEY_LABEL = "trial licence"


def trial_provider(licence: Licence) -> ProviderSpec:
    """The provider ``licence`` creates. Raises :class:`LicenceError` (``bad_claim``) when
    its claims do not make a valid provider (the message never quotes the key)."""
    data: dict[str, object] = {
        "id": licence.provider,
        "name": "Trial licence",
        "format": licence.format,
        "base_url": licence.url,
        "keys": [{"value": licence.key, "label": KEY_LABEL}],
    }
    if licence.model:
        data["models"] = [{"id": licence.model}]
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'provider'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise LicenceError(
            "bad_claim", f"trial licence claims make no valid provider: {problems}"
        ) from None


def with_trial(spec: PoolSpec, licence: Licence) -> PoolSpec:
    """``spec`` with the licence's provider appended (unchanged when it is already there).

    Raises :class:`LicenceError`: ``bad_claim`` (see :func:`trial_provider`) or
    ``conflict`` when the YAML declares another provider with the same id.
    """
    provider = trial_provider(licence)
    existing = spec.provider(provider.id)
    if existing == provider:
        return spec
    if existing is not None:
        raise LicenceError(
            "conflict",
            f"trial licence provider id {provider.id!r} is already used by a provider of "
            "the config; the trial provider is not added",
        )
    return spec.model_copy(update={"providers": (*spec.providers, provider)})
