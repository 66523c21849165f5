"""The Responses API inbound: state it cannot translate, broken streams, errors."""

from __future__ import annotations

import openai
import pytest

from tests.server.conftest import GatewayFactory
from tests.server.fakes import Fault

RESPONSES = {
    "id": "rs",
    "fake": "rs",
    "format": "responses",
    "location": "cloud",
    "keys": [{"env": "OPENAI_B_KEY"}],
    "models": [{"id": "m"}],
}
CHAT = {
    "id": "oa",
    "fake": "oa",
    "location": "cloud",
    "keys": [{"env": "OPENAI_A_KEY"}],
    "models": [{"id": "m"}],
}
CLAUDE = {
    "id": "an",
    "fake": "an",
    "format": "anthropic",
    "location": "cloud",
    "keys": [{"env": "ANTH_KEY"}],
    "models": [{"id": "m"}],
}


async def test_previous_response_id_passes_through_to_a_responses_upstream(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[RESPONSES])
    response = await gw.openai().responses.create(
        model="m", input="and then?", previous_response_id="resp_123"
    )
    assert response.output_text
    assert gw.fakes["rs"].requests[0]["previous_response_id"] == "resp_123"


async def test_previous_response_id_cannot_be_translated(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[CHAT])
    with pytest.raises(openai.BadRequestError) as exc:
        await gw.openai().responses.create(
            model="m", input="and then?", previous_response_id="resp_123"
        )
    assert "previous_response_id" in exc.value.message
    assert gw.fakes["oa"].requests == []


async def test_untranslatable_skips_only_the_providers_that_need_translation(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[{**CHAT, "priority": 5}, RESPONSES])
    raw = await gw.openai().responses.with_raw_response.create(
        model="m", input="and then?", previous_response_id="resp_123"
    )
    assert raw.headers["x-pooldaemon-provider"] == "rs"


async def test_translated_stream_failure_keeps_the_stream_identity(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[CLAUDE])
    gw.fakes["an"].faults.append(Fault(break_after=4))
    # The SDK's stream helper checks that every event belongs to one response:
    # a failure event with a new id would make it raise RuntimeError.
    async with gw.openai().responses.stream(model="m", input="hi") as stream:
        events = [e async for e in stream]
    assert events[-1].type == "response.failed"
    assert "response.completed" not in [e.type for e in events]
    assert events[-1].response.id == events[0].response.id  # type: ignore[union-attr]


async def test_errors_use_the_openai_shape(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[RESPONSES])
    with pytest.raises(openai.NotFoundError) as exc:
        await gw.openai().responses.create(model="nope", input="hi")
    assert exc.value.body["type"] == "not_found_error"  # type: ignore[index]
