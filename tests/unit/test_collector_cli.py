"""Where `denomas-usage collector` and `broker start` take their ports from (command line, environment, default)."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

from streams.cli import app
from streams.cli.pipeline import collector_settings
from streams.config import Settings


def parsed(path: list[str], argv: list[str]) -> dict[str, Any]:
    """The parameters the command at `path` (e.g. ["broker", "start"]) gets from `argv`, without running it."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command.make_context(" ".join(path), argv).params


def _collector(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("DENOMAS_COLLECTOR_PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return collector_settings(Settings.from_env(), **parsed(["collector"], argv))


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
    ([], 9092, "512m"),
    (["--port", "19092", "--heap", "1g"], 19092, "1g"),
])
def test_broker_start_options_are_parsed(argv, port, heap):
    params = parsed(["broker", "start"], argv)
    assert (params["port"], params["heap"]) == (port, heap)
