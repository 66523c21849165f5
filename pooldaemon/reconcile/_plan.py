"""The plan: a pure diff of the applied spec against the desired spec.

``plan(applied, desired)`` says what applying ``desired`` would change:
providers added, removed or changed (and which of them lose their runtime
state), keys rotated, aliases, clients and the top-level sections. It reads
only the two specs, so a reload, the admin API's dry run and ``pooldaemon
plan`` all share it.

Nothing in a :class:`Plan` is secret: a key is shown by its label or its
source, an inline ``value:`` only by its display hash; clients only by name;
the trial licence only as "changed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from pooldaemon.pool._snapshot import key_id
from pooldaemon.redaction import display_hash
from pooldaemon.spec import KeySpec, PoolSpec, ProviderSpec

__all__ = ["RESET_FIELDS", "Plan", "ProviderChange", "key_label", "plan"]

RESET_FIELDS = frozenset({"base_url", "alternate_base_urls", "format", "api_version", "keys"})
"""Provider fields whose change resets the provider's runtime state.

Cooldowns, latency and rejected keys describe one endpoint reached with
certain credentials; once either changes they say nothing about the new one.
"""

_EMPTY_POOL = PoolSpec(version=1)
_LIST_LIMIT = 8  # entries shown per list in the one-line summary


def key_label(key: KeySpec) -> str:
    """How a key is shown: its label, else its source; an inline value only as its display hash."""
    if key.label:
        return key.label
    if key.value is not None:
        return f"value:{display_hash(key.value)}"
    return key.source


@dataclass(frozen=True, slots=True)
class ProviderChange:
    """A provider present on both sides whose spec differs."""

    id: str
    fields: tuple[str, ...]
    """Top-level fields that differ, in the order ``ProviderSpec`` declares them."""
    keys_added: tuple[str, ...] = ()
    """Safe labels (see :func:`key_label`) of keys only the desired spec has."""
    keys_removed: tuple[str, ...] = ()
    keys_changed: tuple[str, ...] = ()
    """Keys on both sides (same source) whose label or ``enabled`` changed."""
    reset_state: bool = False
    """The endpoint or the keys changed: cooldowns, latency and rejected keys are dropped."""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "fields": list(self.fields),
            "keys_added": list(self.keys_added),
            "keys_removed": list(self.keys_removed),
            "keys_changed": list(self.keys_changed),
            "reset_state": self.reset_state,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProviderChange:
        ident = data.get("id")
        if not isinstance(ident, str):
            raise ValueError("provider change without a string 'id'")
        return cls(
            ident,
            _strs(data, "fields"),
            _strs(data, "keys_added"),
            _strs(data, "keys_removed"),
            _strs(data, "keys_changed"),
            _flag(data, "reset_state"),
        )

    def _key_groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (("+", self.keys_added), ("-", self.keys_removed), ("~", self.keys_changed))

    def _keys_brief(self) -> str:
        counts = [f"{sign}{len(labels)}" for sign, labels in self._key_groups() if labels]
        return " ".join(["keys", *counts])

    def _keys_detail(self) -> str:
        items = [f"{sign} {label}" for sign, labels in self._key_groups() for label in labels]
        return f"keys ({', '.join(items) or 'reordered'})"

    def brief(self) -> str:
        """``anthropic: priority, keys +1 -1 [reset]``: for the one-line summary."""
        shown = (self._keys_brief() if f == "keys" else f for f in self.fields)
        return f"{self.id}: {', '.join(shown)}" + (" [reset]" if self.reset_state else "")

    def detail(self) -> str:
        """``anthropic: priority, keys (+ env:K2, - value:sk-ant-a...xyz9) [state reset]``."""
        shown = (self._keys_detail() if f == "keys" else f for f in self.fields)
        return f"{self.id}: {', '.join(shown)}" + (" [state reset]" if self.reset_state else "")


@dataclass(frozen=True, slots=True)
class Plan:
    """What applying a desired spec changes. ``Plan()`` is the empty plan.

    Names in each tuple are sorted; field names are dotted for nested sections
    (``cooldown_changed == ("transient.max",)``).
    """

    providers_added: tuple[str, ...] = ()
    providers_removed: tuple[str, ...] = ()
    providers_changed: tuple[ProviderChange, ...] = ()
    reordered: tuple[str, ...] = ()
    """``providers`` and/or ``clients`` when the order of the entries on both sides changed."""
    aliases_added: tuple[str, ...] = ()
    aliases_removed: tuple[str, ...] = ()
    aliases_changed: tuple[str, ...] = ()
    clients_added: tuple[str, ...] = ()
    clients_removed: tuple[str, ...] = ()
    clients_changed: tuple[str, ...] = ()
    routing_changed: tuple[str, ...] = ()
    cooldown_changed: tuple[str, ...] = ()
    pricing_changed: tuple[str, ...] = ()
    catalog_changed: tuple[str, ...] = ()
    usage_changed: tuple[str, ...] = ()
    trial_changed: bool = False

    @property
    def empty(self) -> bool:
        """Nothing changes: applying the desired spec is a no-op."""
        return self == _NO_CHANGE

    def providers_to_reset(self) -> frozenset[str]:
        """Providers whose runtime state must go (``Runtime.forget``): removed or reset."""
        reset = (c.id for c in self.providers_changed if c.reset_state)
        return frozenset(self.providers_removed).union(reset)

    def _named(
        self,
    ) -> tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]:
        """(plural, singular, added, changed, removed) of the sections diffed by name."""
        return (
            ("aliases", "alias", self.aliases_added, self.aliases_changed, self.aliases_removed),
            ("clients", "client", self.clients_added, self.clients_changed, self.clients_removed),
        )

    def _sections(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (
            ("routing", self.routing_changed),
            ("cooldown", self.cooldown_changed),
            ("pricing", self.pricing_changed),
            ("catalog", self.catalog_changed),
            ("usage", self.usage_changed),
        )

    def summary(self) -> str:
        """One line for the daemon's log, e.g. ``+2 providers (ollama, openai); ~1 provider
        (anthropic: priority, keys +1 -1 [reset]); aliases +1; routing: strategy``."""
        if self.empty:
            return "no changes"
        changed = [c.brief() for c in self.providers_changed]
        parts = [
            f"{sign}{_count(len(items), 'provider')} ({_shorten(items, sep)})"
            for sign, items, sep in (
                ("+", self.providers_added, ", "),
                ("~", changed, "; "),
                ("-", self.providers_removed, ", "),
            )
            if items
        ]
        if self.reordered:
            parts.append(f"order: {', '.join(self.reordered)}")
        for plural, _, added, modified, removed in self._named():
            counts = [
                f"{s}{len(n)}" for s, n in (("+", added), ("~", modified), ("-", removed)) if n
            ]
            if counts:
                parts.append(" ".join([plural, *counts]))
        parts.extend(f"{name}: {', '.join(fields)}" for name, fields in self._sections() if fields)
        if self.trial_changed:
            parts.append("trial licence")
        return "; ".join(parts)

    def lines(self) -> list[str]:
        """A readable plan, one change a line (``+ provider openai``, ``~ routing: strategy``);
        ``["no changes"]`` when empty."""
        if self.empty:
            return ["no changes"]
        changes = {c.id: c for c in self.providers_changed}
        out: list[str] = []
        for pid in sorted({*self.providers_added, *self.providers_removed, *changes}):
            if pid in changes:
                out.append(f"~ provider {changes[pid].detail()}")
            else:
                out.append(f"{'+' if pid in self.providers_added else '-'} provider {pid}")
        out.extend(f"~ order of {section}" for section in self.reordered)
        for _, noun, added, modified, removed in self._named():
            signs = {**dict.fromkeys(removed, "-"), **dict.fromkeys(modified, "~")}
            signs.update(dict.fromkeys(added, "+"))
            out.extend(f"{signs[name]} {noun} {name}" for name in sorted(signs))
        out.extend(f"~ {name}: {', '.join(fields)}" for name, fields in self._sections() if fields)
        if self.trial_changed:
            out.append("~ trial: licence changed")
        return out

    def to_json(self) -> dict[str, object]:
        """The plan as JSON-ready data (for the admin API); :meth:`from_json` reads it back."""
        return {
            "empty": self.empty,
            "summary": self.summary(),
            "providers": {
                "added": list(self.providers_added),
                "removed": list(self.providers_removed),
                "changed": [c.to_json() for c in self.providers_changed],
                "reset": sorted(self.providers_to_reset()),
            },
            "reordered": list(self.reordered),
            **{
                plural: {"added": list(added), "removed": list(removed), "changed": list(modified)}
                for plural, _, added, modified, removed in self._named()
            },
            **{name: list(fields) for name, fields in self._sections()},
            "trial": self.trial_changed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Plan:
        """The plan :meth:`to_json` gave (e.g. from the admin API). Raises ``ValueError``."""
        providers = _section(data, "providers")
        aliases = _section(data, "aliases")
        clients = _section(data, "clients")
        changed = providers.get("changed", [])
        if not isinstance(changed, list):
            raise ValueError("'providers.changed' must be a list")
        return cls(
            providers_added=_strs(providers, "added"),
            providers_removed=_strs(providers, "removed"),
            providers_changed=tuple(
                ProviderChange.from_json(_mapping(c, "providers.changed[]")) for c in changed
            ),
            reordered=_strs(data, "reordered"),
            aliases_added=_strs(aliases, "added"),
            aliases_removed=_strs(aliases, "removed"),
            aliases_changed=_strs(aliases, "changed"),
            clients_added=_strs(clients, "added"),
            clients_removed=_strs(clients, "removed"),
            clients_changed=_strs(clients, "changed"),
            routing_changed=_strs(data, "routing"),
            cooldown_changed=_strs(data, "cooldown"),
            pricing_changed=_strs(data, "pricing"),
            catalog_changed=_strs(data, "catalog"),
            usage_changed=_strs(data, "usage"),
            trial_changed=_flag(data, "trial"),
        )


_NO_CHANGE = Plan()


def plan(applied: PoolSpec | None, desired: PoolSpec) -> Plan:
    """What applying ``desired`` over ``applied`` changes (``None``: an empty pool).

    Pure: reads the two specs only. ``plan(a, b).empty`` exactly when ``a == b``.
    """
    old = _EMPTY_POOL if applied is None else applied
    old_providers = {p.id: p for p in old.providers}
    new_providers = {p.id: p for p in desired.providers}
    old_clients = {c.name: c for c in old.clients}
    new_clients = {c.name: c for c in desired.clients}
    p_added, p_removed, p_common = _by_name(old_providers, new_providers)
    a_added, a_removed, a_changed = _by_name(old.aliases, desired.aliases)
    c_added, c_removed, c_changed = _by_name(old_clients, new_clients)
    changes = (_provider_change(old_providers[pid], new_providers[pid]) for pid in p_common)
    return Plan(
        providers_added=p_added,
        providers_removed=p_removed,
        providers_changed=tuple(c for c in changes if c is not None),
        reordered=tuple(
            section
            for section, before, after in (
                ("providers", list(old_providers), list(new_providers)),
                ("clients", list(old_clients), list(new_clients)),
            )
            if _reordered(before, after)
        ),
        aliases_added=a_added,
        aliases_removed=a_removed,
        aliases_changed=a_changed,
        clients_added=c_added,
        clients_removed=c_removed,
        clients_changed=c_changed,
        routing_changed=_changed_fields(old.routing, desired.routing),
        cooldown_changed=_changed_fields(old.cooldown, desired.cooldown),
        pricing_changed=_changed_fields(old.pricing, desired.pricing),
        catalog_changed=_changed_fields(old.catalog, desired.catalog),
        usage_changed=_changed_fields(old.usage, desired.usage),
        trial_changed=old.trial != desired.trial,
    )


def _provider_change(old: ProviderSpec, new: ProviderSpec) -> ProviderChange | None:
    fields = _changed_fields(old, new, nested=False)
    if not fields:
        return None
    if "keys" not in fields:
        return ProviderChange(new.id, fields, reset_state=not RESET_FIELDS.isdisjoint(fields))
    # Identity of a key as runtime state knows it: its source (or value), not its place.
    before = {key_id(old.id, k): k for k in old.keys}
    after = {key_id(new.id, k): k for k in new.keys}
    return ProviderChange(
        new.id,
        fields,
        keys_added=tuple(key_label(k) for i, k in after.items() if i not in before),
        keys_removed=tuple(key_label(k) for i, k in before.items() if i not in after),
        keys_changed=tuple(
            key_label(k) for i, k in after.items() if i in before and before[i] != k
        ),
        reset_state=True,
    )


def _changed_fields(old: BaseModel, new: BaseModel, *, nested: bool = True) -> tuple[str, ...]:
    """Names of the fields that differ; with ``nested``, sub-models give dotted names."""
    out: list[str] = []
    for name in type(new).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        inner: tuple[str, ...] = ()
        if nested and isinstance(before, BaseModel) and type(before) is type(after):
            inner = _changed_fields(before, after)
        if inner:
            out.extend(f"{name}.{sub}" for sub in inner)
        else:
            out.append(name)
    return tuple(out)


def _by_name(
    old: Mapping[str, object], new: Mapping[str, object]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(added, removed, changed) names, each sorted."""
    added = tuple(sorted(new.keys() - old.keys()))
    removed = tuple(sorted(old.keys() - new.keys()))
    common = sorted(old.keys() & new.keys())
    return added, removed, tuple(n for n in common if old[n] != new[n])


def _reordered(before: Sequence[str], after: Sequence[str]) -> bool:
    """The entries on both sides are not in the same relative order."""
    common = set(before) & set(after)
    return [n for n in before if n in common] != [n for n in after if n in common]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _shorten(items: Sequence[str], sep: str) -> str:
    """The first few items joined by ``sep``: a log line stays a line."""
    more = len(items) - _LIST_LIMIT
    return sep.join([*items[:_LIST_LIMIT], f"+{more} more"] if more > 0 else items)


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where!r} must be an object")
    return value


def _section(data: Mapping[str, object], name: str) -> Mapping[str, object]:
    return _mapping(data.get(name, {}), name)


def _strs(data: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name!r} must be a list of strings")
    return tuple(value)


def _flag(data: Mapping[str, object], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name!r} must be true or false")
    return value
