"""Wire formats of the upstreams, one module each behind one small interface."""

from __future__ import annotations

from pooldaemon.upstream._base import StreamWatch, WireFormat
from pooldaemon.upstream._keys import KeyProblem, resolve_keys
from pooldaemon.upstream._sse import SseEvent, SseSplitter
from pooldaemon.upstream.anthropic import ANTHROPIC
from pooldaemon.upstream.google import GOOGLE
from pooldaemon.upstream.ollama import OLLAMA
from pooldaemon.upstream.openai import OPENAI
from pooldaemon.upstream.responses import RESPONSES

__all__ = [
    "ANTHROPIC",
    "GOOGLE",
    "OLLAMA",
    "OPENAI",
    "RESPONSES",
    "KeyProblem",
    "SseEvent",
    "SseSplitter",
    "StreamWatch",
    "WireFormat",
    "resolve_keys",
]
