"""Where `denomas-usage collector` and `broker start` take their ports from (command line, environment, default)."""

from __future__ import annotations

import pytest

from streams.cli import build_parser, collector_settings
from streams.config import Settings


def _collector(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("DENOMAS_COLLECTOR_PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return collector_settings(build_parser().parse_args(["collector", *argv]), Settings.from_env())


@pytest.mark.parametrize(("argv", "env", "host", "port"), [
    ([], {}, "127.0.0.1", 8080),
    ([], {"DENOMAS_COLLECTOR_PORT": "9191"}, "127.0.0.1", 9191),
    (["--port", "7070"], {"DENOMAS_COLLECTOR_PORT": "9191"}, "127.0.0.1", 7070),
    (["--port", "0", "--host", "0.0.0.0"], {}, "0.0.0.0", 0),
])
def test_collector_port_from_command_line_environment_or_default(argv, env, host, port, monkeypatch):
    settings = _collector(argv, env, monkeypatch)
    assert (settings.collector_host, settings.collector_port) == (host, port)


@pytest.mark.parametrize(("argv", "port", "heap"), [
    (["broker", "start"], 9092, "512m"),
    (["broker", "start", "--port", "19092", "--heap", "1g"], 19092, "1g"),
])
def test_broker_start_options_are_parsed(argv, port, heap):
    args = build_parser().parse_args(argv)
    assert (args.action, args.port, args.heap) == ("start", port, heap)
