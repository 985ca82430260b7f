"""The compiled fast path accepts exactly what jsonschema accepts (so no invalid event slips through)."""

from __future__ import annotations

import orjson

from fleet.snowplow_events import generate_snowplow
from streams.enrich.iglu import Registry
from streams.enrich.snowplow import _PROTOCOL, _key, decode_contexts


def _verdicts(validator, documents) -> list[tuple[bool, bool]]:
    return [(validator.is_valid(d), not any(True for _ in validator.slow.iter_errors(d))) for d in documents]


def test_protocol_fast_path_agrees_with_jsonschema_on_good_and_malformed_events():
    events = [e.payload for e in generate_snowplow(20, 12, seed=5).events]
    mutated = [dict(e, e=1) for e in events[:50]] + [dict(e, tv=None) for e in events[:50]] + \
        [{k: v for k, v in e.items() if k != "p"} for e in events[:50]] + [dict(e, dtm="12a") for e in events[:50]]
    verdicts = _verdicts(_PROTOCOL, events + mutated)
    assert all(fast == slow for fast, slow in verdicts)
    assert any(not fast for fast, _ in verdicts) and any(fast for fast, _ in verdicts)  # both outcomes covered


def test_context_fast_path_agrees_with_jsonschema():
    registry = Registry.from_dir()
    contexts = []
    for event in generate_snowplow(20, 12, seed=5).events:
        try:
            contexts += decode_contexts(event.payload)
        except Exception:  # malformed contexts are covered by the Snowplow tests
            continue
    checked = 0
    for entity in contexts:
        validator = registry.validator(_key(entity))
        if validator is None:
            continue
        data = entity["data"]
        broken = [dict(data, environment=7), {k: v for k, v in data.items() if k != "environment"},
                  dict(data, namespace_id="x"), orjson.loads(orjson.dumps(data))]
        verdicts = _verdicts(validator, [data] + broken)
        assert all(fast == slow for fast, slow in verdicts), entity
        checked += 1
    assert checked > 100
