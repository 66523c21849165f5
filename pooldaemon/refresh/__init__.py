"""Scheduled refreshes: model catalogs, format detection, model probing and remote
pricing sources, what they learned kept in ``state_dir`` and published as
snapshots by :class:`Refresher`."""

from __future__ import annotations

from pooldaemon.refresh._catalog import (
    CatalogResult,
    base_url_candidates,
    catalog_models,
    fetch_catalog,
)
from pooldaemon.refresh._catalog_store import (
    StoredCatalog,
    StoredEndpoint,
    load_catalogs,
    load_endpoints,
    model_from_json,
    model_to_json,
    needs_detection,
    save_catalogs,
    save_endpoints,
)
from pooldaemon.refresh._detect import (
    Detection,
    detect_format,
    endpoint_base,
    format_from_url,
    probe_plan,
)
from pooldaemon.refresh._price_fetch import (
    SourceState,
    fetch_source,
    load_source_states,
    merged_prices,
    save_source_state,
)
from pooldaemon.refresh._price_sources import (
    ParsedPrices,
    PriceSourceError,
    RemoteModel,
    parse_litellm,
    parse_models_dev,
    parse_source,
    price_change_problem,
)
from pooldaemon.refresh._probe import ProbeResult, probe_models, probe_request
from pooldaemon.refresh._refresher import Refresher, RefreshFailed

__all__ = [
    "CatalogResult",
    "Detection",
    "ParsedPrices",
    "PriceSourceError",
    "ProbeResult",
    "RefreshFailed",
    "Refresher",
    "RemoteModel",
    "SourceState",
    "StoredCatalog",
    "StoredEndpoint",
    "base_url_candidates",
    "catalog_models",
    "detect_format",
    "endpoint_base",
    "fetch_catalog",
    "fetch_source",
    "format_from_url",
    "load_catalogs",
    "load_endpoints",
    "load_source_states",
    "merged_prices",
    "model_from_json",
    "model_to_json",
    "needs_detection",
    "parse_litellm",
    "parse_models_dev",
    "parse_source",
    "price_change_problem",
    "probe_models",
    "probe_plan",
    "probe_request",
    "save_catalogs",
    "save_endpoints",
    "save_source_state",
]
