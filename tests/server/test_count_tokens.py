"""``/v1/messages/count_tokens`` with the official Anthropic SDK."""

from __future__ import annotations

import anthropic
import pytest

from tests.server.conftest import KEYS, GatewayFactory
from tests.server.fakes import COUNTED

ANTHROPIC = {
    "id": "an",
    "fake": "an",
    "format": "anthropic",
    "location": "cloud",
    "keys": [{"env": "ANTH_KEY"}],
    "models": [{"id": "claude-fake-1"}],
}
OPENAI = {
    "id": "oa",
    "fake": "oa",
    "location": "cloud",
    "keys": [{"env": "OPENAI_A_KEY"}],
    "models": [{"id": "gpt-4o"}],
}
HI = [{"role": "user", "content": "hello there, how are you today?"}]


async def test_anthropic_upstream_counts(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC])
    result = await gw.anthropic().messages.with_raw_response.count_tokens(
        model="claude-fake-1", messages=HI, system="Be brief."
    )
    assert (await result.parse()).input_tokens == COUNTED
    assert result.headers["x-pooldaemon-provider"] == "an"
    sent = gw.fakes["an"].requests[0]
    assert sent == {"model": "claude-fake-1", "messages": HI, "system": "Be brief."}
    assert gw.fakes["an"].headers[0]["x-api-key"] == KEYS["ANTH_KEY"]
    gw.store.flush()
    assert gw.store.records(0, 2e9) == []  # counting is free: no usage record


async def test_other_upstreams_get_an_estimate(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OPENAI])
    result = await gw.anthropic().messages.with_raw_response.count_tokens(
        model="gpt-4o", messages=HI
    )
    counted = (await result.parse()).input_tokens
    assert 5 <= counted <= 40
    assert result.headers["x-pooldaemon-estimate"] == "true"
    assert gw.fakes["oa"].requests == []


async def test_unknown_model(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC])
    with pytest.raises(anthropic.NotFoundError):
        await gw.anthropic().messages.count_tokens(model="claude-nope", messages=HI)
