"""The Anthropic fake keeps today's contract per model (EXTERNAL_APIS §9.A), seen through the SDK.

A fake kinder than the service hides production failures, so each rule of §9.A.8 is
checked here with the real SDK against the fake over a real socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.fakes import anthropic as fk

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["CONFIRM", "REJECT"]},
        "confidence": {"type": "integer"},
        "reasoning": {"type": "string"},
    },
    "required": ["decision", "confidence", "reasoning"],
    "additionalProperties": False,
}
TOOL = {"name": "submit", "description": "d", "input_schema": SCHEMA}
MESSAGES = [{"role": "user", "content": "KRW-BTC candles"}]


@pytest.fixture
async def fake() -> AsyncIterator[fk.FakeAnthropic]:
    server = fk.FakeAnthropic(today=date(2026, 11, 29))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: fk.FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = anthropic.AsyncAnthropic(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    yield c
    await c.close()


async def create(client: anthropic.AsyncAnthropic, model: str, **kw: Any) -> Any:
    return await client.messages.create(model=model, max_tokens=2048, messages=MESSAGES, **kw)


def fmt(schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "schema": schema}}


async def test_forced_tool_is_refused_by_sonnet_5_5_with_the_documented_body(
    client: Any, fake: Any
) -> None:
    """tool_choice tool/any on Sonnet 5.5 → 400 invalid_request_error, the quoted message."""
    for choice in ({"type": "tool", "name": "submit"}, {"type": "any"}):
        with pytest.raises(anthropic.BadRequestError) as err:
            await create(client, "claude-sonnet-5-5", tools=[TOOL], tool_choice=choice)
        assert err.value.type == "invalid_request_error"
        assert err.value.body["error"]["message"] == (  # type: ignore[index]
            'tool_choice: type "tool" and "any" are not supported for this model.'
        )
    assert fake.count == 0


async def test_haiku_5_5_still_takes_a_forced_tool_without_thinking(client: Any) -> None:
    """Haiku 5.5 + forced tool → one tool_use block first, no thinking block."""
    msg = await create(
        client, "claude-haiku-5-5", tools=[TOOL], tool_choice={"type": "tool", "name": "submit"}
    )
    assert [b.type for b in msg.content] == ["tool_use"]
    assert msg.stop_reason == "tool_use"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929"])
async def test_retired_ids_are_404_from_their_retirement_date(
    client: Any, fake: Any, model: str
) -> None:
    """Sonnet 4.5 answers on 2026-11-29 and is 404 not_found_error from 2026-11-30."""
    assert (await create(client, model, output_config=fmt())).stop_reason == "end_turn"
    fake.today = date(2026, 11, 30)
    with pytest.raises(anthropic.NotFoundError) as err:
        await create(client, model, output_config=fmt())
    assert err.value.type == "not_found_error"
    assert err.value.body["error"]["message"] == f"model: {model}"  # type: ignore[index]


async def test_unknown_model_is_404(client: Any) -> None:
    """A made-up id is 404 not_found_error naming it."""
    with pytest.raises(anthropic.NotFoundError, match="claude-nonesuch"):
        await create(client, "claude-nonesuch", output_config=fmt())


@pytest.mark.parametrize(
    ("model", "blocks"),
    [("claude-sonnet-5-5", ["thinking", "text"]), ("claude-haiku-5-5", ["thinking", "text"]),
     ("claude-haiku-4-5", ["text"]), ("claude-sonnet-4-5", ["text"])],
)  # fmt: skip
async def test_structured_output_is_a_text_block_after_any_thinking(
    client: Any, model: str, blocks: list[str]
) -> None:
    """The 5.5 models put a thinking block (empty text, a signature) before the JSON text."""
    msg = await create(client, model, output_config=fmt())
    assert [b.type for b in msg.content] == blocks
    if blocks[0] == "thinking":
        assert msg.content[0].thinking == ""
        assert msg.content[0].signature
        assert msg.usage.output_tokens == 60 + 90  # thinking tokens are billed as output
    assert msg.content[-1].text.startswith('{"decision": "CONFIRM"')


async def test_thinking_blocks_are_scriptable(client: Any, fake: Any) -> None:
    """Several leading thinking blocks, or none, as scripted."""
    fake.script(fk.confirm(thinking_blocks=3), fk.confirm(thinking_blocks=0))
    first = await create(client, "claude-sonnet-5-5", output_config=fmt())
    second = await create(client, "claude-sonnet-5-5", output_config=fmt())
    assert [b.type for b in first.content] == ["thinking"] * 3 + ["text"]
    assert [b.type for b in second.content] == ["text"]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("minimum", 0), ("maximum", 100), ("multipleOf", 5), ("minLength", 1), ("maxLength", 9)],
)
async def test_unsupported_schema_keywords_are_400(
    client: Any, fake: Any, keyword: str, value: int
) -> None:
    """Numeric and string-length constraints are refused by structured outputs."""
    prop = "confidence" if keyword in ("minimum", "maximum", "multipleOf") else "reasoning"
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"]}}
    schema["properties"][prop] = {**schema["properties"][prop], keyword: value}
    with pytest.raises(anthropic.BadRequestError, match=keyword):
        await create(client, "claude-haiku-5-5", output_config=fmt(schema))
    assert fake.count == 0


async def test_objects_must_say_additional_properties_false(client: Any) -> None:
    """An object schema without additionalProperties: false is a 400, also on strict tools."""
    loose = {k: v for k, v in SCHEMA.items() if k != "additionalProperties"}
    with pytest.raises(anthropic.BadRequestError, match="additionalProperties"):
        await create(client, "claude-sonnet-5-5", output_config=fmt(loose))
    strict = {**TOOL, "input_schema": loose, "strict": True}
    with pytest.raises(anthropic.BadRequestError, match="additionalProperties"):
        await create(client, "claude-sonnet-5-5", tools=[strict], tool_choice={"type": "auto"})


async def test_refusal_is_a_200_with_no_content_and_stop_details(client: Any, fake: Any) -> None:
    """stop_reason refusal: empty content and a refusal stop_details object."""
    fake.script(fk.refusal("cyber"))
    msg = await create(client, "claude-sonnet-5-5", output_config=fmt())
    assert (msg.stop_reason, msg.content) == ("refusal", [])
    assert msg.stop_details.type == "refusal"
    assert msg.stop_details.category == "cyber"


async def test_max_tokens_can_stop_right_after_thinking(client: Any, fake: Any) -> None:
    """A thinking block and then nothing: stop_reason max_tokens, no text block."""
    fake.script(fk.confirm(stop_reason="max_tokens"))
    msg = await create(client, "claude-sonnet-5-5", output_config=fmt())
    assert msg.stop_reason == "max_tokens"
    assert [b.type for b in msg.content] == ["thinking"]


@pytest.mark.parametrize(
    ("model", "thinking", "message"),
    [
        ("claude-sonnet-5-5", {"type": "enabled", "budget_tokens": 2048},
         '"thinking.type.enabled" is not supported'),
        ("claude-sonnet-5-5", {"type": "disabled"}, 'send "thinking": {"type": "between_tools"}'),
        ("claude-haiku-5-5", {"type": "enabled", "budget_tokens": 2048},
         '"thinking.type.enabled" is not supported'),
        ("claude-haiku-4-5", {"type": "adaptive"}, "adaptive thinking is not supported"),
        ("claude-sonnet-4-5", {"type": "adaptive"}, "adaptive thinking is not supported"),
    ],
)  # fmt: skip
async def test_thinking_types_follow_the_model(
    client: Any, model: str, thinking: dict[str, Any], message: str
) -> None:
    """Each model refuses the thinking types §9.A.4 lists, with the quoted message."""
    with pytest.raises(anthropic.BadRequestError) as err:
        await create(client, model, thinking=thinking, output_config=fmt())
    assert message in err.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "thinking", "blocks"),
    [("claude-sonnet-5-5", {"type": "between_tools"}, ["text"]),
     ("claude-haiku-5-5", {"type": "disabled"}, ["text"]),
     ("claude-haiku-4-5", {"type": "enabled", "budget_tokens": 1024}, ["thinking", "text"])],
)  # fmt: skip
async def test_accepted_thinking_types(
    client: Any, model: str, thinking: dict[str, Any], blocks: list[str]
) -> None:
    """The accepted ways to turn thinking off (or on, on Haiku 4.5) shape the content."""
    msg = await create(client, model, thinking=thinking, output_config=fmt())
    assert [b.type for b in msg.content] == blocks


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "claude-sonnet-4-5"])
async def test_effort_is_refused_where_the_model_has_none(client: Any, model: str) -> None:
    """output_config.effort on the 4.5 models is a 400; on the 5.5 models it is accepted."""
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        await create(client, model, output_config={**fmt(), "effort": "low"})
    msg = await create(client, "claude-haiku-5-5", output_config={**fmt(), "effort": "low"})
    assert msg.stop_reason == "end_turn"


async def test_sampling_parameters_are_400_on_5_5_and_under_the_new_version(
    client: Any, fake: Any
) -> None:
    """temperature via extra_body: 400 on Sonnet 5.5; on Haiku 4.5 only under 2026-10-21."""
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        await create(client, "claude-sonnet-5-5", extra_body={"temperature": 0.2})
    old = {"anthropic-version": "2023-06-01"}
    msg = await create(
        client, "claude-haiku-4-5", extra_body={"temperature": 0.2}, extra_headers=old
    )
    assert msg.stop_reason == "end_turn"
    new = {"anthropic-version": "2026-10-21"}
    with pytest.raises(anthropic.BadRequestError, match="top_p"):
        await create(client, "claude-haiku-4-5", extra_body={"top_p": 0.9}, extra_headers=new)


async def test_assistant_prefill_is_refused_on_5_5(client: Any) -> None:
    """A trailing assistant message (prefill) is a 400 on the 5.5 generation."""
    prefill = [*MESSAGES, {"role": "assistant", "content": "{"}]
    with pytest.raises(anthropic.BadRequestError, match="Prefill"):
        await client.messages.create(model="claude-sonnet-5-5", max_tokens=512, messages=prefill)


async def test_either_auth_header_and_any_version_header(fake: Any) -> None:
    """Authorization: Bearer (SDK 2.x) or x-api-key (raw API, older SDKs), any version; no key
    is a 401."""
    bearer = anthropic.AsyncAnthropic(
        api_key="sk-bearer", base_url=fake.base_url, max_retries=0,
        default_headers={"anthropic-version": "2099-01-01"},
    )  # fmt: skip
    try:
        await create(bearer, "claude-haiku-5-5", output_config=fmt())
    finally:
        await bearer.close()
    assert fake.requests[0].headers["authorization"] == "Bearer sk-bearer"
    assert fake.requests[0].headers["anthropic-version"] == "2099-01-01"
    body = {"model": "claude-haiku-5-5", "max_tokens": 64, "messages": MESSAGES}
    url = f"{fake.base_url}/v1/messages"
    async with aiohttp.ClientSession() as http:  # the SDK refuses to send no key at all
        keyed = {"x-api-key": "sk-key", "anthropic-version": "2023-06-01"}
        async with http.post(url, json=body, headers=keyed) as resp:
            assert resp.status == 200
        async with http.post(url, json=body) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["type"] == "authentication_error"
    assert fake.requests[1].headers["x-api-key"] == "sk-key"


async def test_models_api_resolves_aliases_and_keeps_retired_models(client: Any, fake: Any) -> None:
    """GET /v1/models/{id}: alias → snapshot, deprecated → lifecycle; unknown → 404."""
    info = await client.models.retrieve("claude-haiku-4-5")
    assert (info.id, info.type) == ("claude-haiku-4-5-20251001", "model")
    sonnet = await client.models.retrieve("claude-sonnet-4-5")
    assert sonnet.model_extra.get("lifecycle", getattr(sonnet, "lifecycle", None)) == "deprecated"
    fake.today = date(2026, 12, 1)
    retired = await client.models.retrieve("claude-sonnet-4-5")
    assert retired.model_extra.get("lifecycle", getattr(retired, "lifecycle", None)) == "retired"
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-sonnet-9")
    assert fake.lookups == ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5",
                            "claude-sonnet-9"]  # fmt: skip


async def test_spend_limit_carries_its_error_code(client: Any, fake: Any) -> None:
    """The monthly spend cap: 429, error.details.error_code, no retry-after."""
    fake.script(fk.spend_limit())
    with pytest.raises(anthropic.RateLimitError) as err:
        await create(client, "claude-haiku-5-5", output_config=fmt())
    details = err.value.body["error"]["details"]  # type: ignore[index]
    assert details == {"error_code": "enforced_spend_limit_reached"}
    assert "retry-after" not in err.value.response.headers


async def test_a_non_json_200_reaches_the_client_as_text(client: Any, fake: Any) -> None:
    """A 200 with an HTML body: the SDK hands back a str, not a Message."""
    fake.script(fk.not_json())
    got = await create(client, "claude-haiku-5-5", output_config=fmt())
    assert isinstance(got, str)
    assert "502 Bad Gateway" in got


@pytest.mark.parametrize(
    ("model", "thinking"),
    [("claude-sonnet-5-5", "between_tools"), ("claude-haiku-5-5", "disabled")],
)
async def test_thinking_off_needs_effort_high_or_lower(
    client: Any, model: str, thinking: str
) -> None:
    """Turning thinking off is refused at effort xhigh/max, accepted at low."""
    with pytest.raises(anthropic.BadRequestError, match="effort high or lower"):
        await create(
            client, model, thinking={"type": thinking}, output_config={**fmt(), "effort": "max"}
        )
    msg = await create(
        client, model, thinking={"type": thinking}, output_config={**fmt(), "effort": "low"}
    )
    assert [b.type for b in msg.content] == ["text"]
