"""Wire formats of the upstreams, one module each behind one small interface."""

from __future__ import annotations

from pooldaemon.upstream._base import StreamWatch, WireFormat
from pooldaemon.upstream._keys import KeyProblem, resolve_keys
from pooldaemon.upstream._sse import SseEvent, SseSplitter
from pooldaemon.upstream.anthropic import ANTHROPIC
from pooldaemon.upstream.openai import OPENAI

__all__ = [
    "ANTHROPIC",
    "OPENAI",
    "KeyProblem",
    "SseEvent",
    "SseSplitter",
    "StreamWatch",
    "WireFormat",
    "resolve_keys",
]
