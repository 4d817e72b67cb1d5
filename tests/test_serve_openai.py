"""The server on 127.0.0.1 (uvicorn in a thread) with a real tiny model, driven by the real `openai` client:
plain, streamed, n>1, multi-turn, system message, sampling with a seed, max_tokens/stop, refused fields,
unknown model, API key."""

from __future__ import annotations

import httpx
import openai
import pytest
from test_serve_fixture import build_recommender

HAT = "HATCHBOX 1 Spool 3D Printer Filament Tabletop Wall Mount Rack"
ANGLE = "Wixey WR300 Digital Angle Gauge"


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture(scope="module")
def server(rec):
    from llmrec.serve.app import ServeSettings
    from llmrec.serve.server import serve_in_thread

    srv = serve_in_thread(rec, ServeSettings(name="tiny-test"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _items(resp, i: int = 0) -> list[str]:
    return [d["item_id"] for d in resp.model_extra["llmrec"]["items"][i]]


def _ask(client, text: str, **kw):
    return client.chat.completions.create(model="tiny-test", messages=[{"role": "user", "content": text}], **kw)


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list()] == ["tiny-test"]
    assert client.models.retrieve("tiny-test").id == "tiny-test"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_plain_completion(client, rec):
    resp = _ask(client, f"I have the {ANGLE}. What else?", extra_body={"k": 3})
    assert resp.model == "tiny-test" and resp.object == "chat.completion"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    want = rec.chat(f"I have the {ANGLE}. What else?", k=3)
    assert choice.message.content == want.text
    assert _items(resp) == [r.item_id for r in want.items]
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0


def test_streamed_equals_plain(client):
    plain = _ask(client, f"I have the {ANGLE}", extra_body={"k": 3})
    chunks = list(_ask(client, f"I have the {ANGLE}", stream=True, stream_options={"include_usage": True},
                       extra_body={"k": 3}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_n_choices_are_disjoint_lists(client):
    resp = _ask(client, f"I have the {ANGLE}", n=3, extra_body={"k": 2})
    assert [c.index for c in resp.choices] == [0, 1, 2]
    lists = [_items(resp, i) for i in range(3)]
    assert all(len(x) == 2 for x in lists) and len({i for x in lists for i in x}) == 6
    with pytest.raises(openai.BadRequestError, match="'n'"):
        _ask(client, f"I have the {ANGLE}", n=60, extra_body={"k": 5})


def test_multi_turn_every_user_turn_counts(client):
    resp = client.chat.completions.create(model="tiny-test", messages=[
        {"role": "user", "content": f"I bought the {HAT}."},
        {"role": "assistant", "content": "Nice. Anything else?"},
        {"role": "user", "content": f"Yes, also the {ANGLE}."}], extra_body={"k": 4})
    resolved = {m["item_id"] for m in resp.model_extra["llmrec"]["resolved"]}
    assert resolved == {"49", "53"}
    assert not resolved & set(_items(resp))
    assert "From earlier in the conversation" in resp.choices[0].message.content


def test_system_message_contributes_items(client):
    resp = client.chat.completions.create(model="tiny-test", messages=[
        {"role": "system", "content": f"The user owns: {HAT}."},
        {"role": "user", "content": [{"type": "text", "text": f"I have the {ANGLE}"}]}], extra_body={"k": 4})
    resolved = {m["item_id"] for m in resp.model_extra["llmrec"]["resolved"]}
    assert resolved == {"49", "53"} and "49" not in _items(resp)


def test_sampling_seed_max_tokens_stop(client):
    a = _ask(client, f"I have the {ANGLE}", temperature=1.0, top_p=0.9, seed=7, extra_body={"k": 3})
    b = _ask(client, f"I have the {ANGLE}", temperature=1.0, top_p=0.9, seed=7, extra_body={"k": 3})
    assert _items(a) == _items(b) and len(set(_items(a))) == 3
    short = _ask(client, f"I have the {ANGLE}", max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens <= 5
    cut = _ask(client, f"I have the {ANGLE}", stop=["\n"])
    assert "\n" not in cut.choices[0].message.content and cut.choices[0].message.content


@pytest.mark.parametrize("kw,field", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ({"extra_body": {"behavior": "../../etc/passwd"}}, "behavior"),
])
def test_refused_fields_name_the_field(client, kw, field):
    with pytest.raises(openai.BadRequestError) as e:
        _ask(client, f"I have the {ANGLE}", **kw)
    assert e.value.status_code == 400 and field in str(e.value)


def test_unknown_model_404(client):
    with pytest.raises(openai.NotFoundError, match="gpt-4o"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": ANGLE}])


def test_api_key(rec):
    from llmrec.serve.app import ServeSettings
    from llmrec.serve.server import serve_in_thread

    srv = serve_in_thread(rec, ServeSettings(name="tiny-test", api_key="s3cret"))
    try:
        bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in good.models.list()] == ["tiny-test"]
        assert httpx.get(srv.url + "/health").status_code == 200  # health stays open for probes
        assert httpx.post(srv.url + "/recommend", json={"history": ["49"]}).status_code == 401
    finally:
        srv.stop()
