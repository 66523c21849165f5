"""Reconcile: watch -> load -> validate -> plan -> apply; status, history, last-known-good."""

from __future__ import annotations

from pooldaemon.reconcile._plan import RESET_FIELDS, Plan, ProviderChange, key_label, plan

__all__ = ["RESET_FIELDS", "Plan", "ProviderChange", "key_label", "plan"]
