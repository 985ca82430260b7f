"""The `denomas-usage` command line: every command and option has help, `--help` works everywhere, the README's
command lines parse, options keep their argparse-era meaning (exit 2 on usage errors), and the console script,
`python -m streams.cli` and `python -m streams` run the same app. Nothing here touches Kafka or the warehouse."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
import yaml

from streams.cli import app, main
from streams.config import PROJECT_ROOT

ROOT = typer.main.get_command(app)


def walk(command: Any = ROOT, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group below the root, with the words that reach it."""
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield (*path, name), sub
        yield from walk(sub, (*path, name))


COMMANDS = list(walk())


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_app_has_every_command_of_the_readme():
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {"demo", "warehouse", "worker", "collector", "broker start", "migrate", "query", "releases load",
                "reference load", "reference columns", "reference sample", "report match-rate", "export cs-mart",
                "catalog", "show", "alerts list", "alerts backtest", "alerts validate", "check"}
    assert expected <= names, expected - names


@pytest.mark.parametrize("markup", ["rich", None], ids=["terminal", "plain"])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help_and_help_exits_zero(path, command, markup, monkeypatch):
    monkeypatch.setattr(app, "rich_markup_mode", markup)  # rich panels on a terminal, plain text otherwise
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    undocumented = [p.name for p in command.params if p.name != "help" and not (getattr(p, "help", "") or "").strip()]
    assert not undocumented, f"{' '.join(path)}: options without help: {undocumented}"
    code, out, _ = _run([*path, "--help"])
    assert code == 0
    assert "Usage: denomas-usage " + " ".join(path) in out
    for param in command.params:
        if param.param_type_name == "option":
            assert param.opts[0] in out, f"{param.opts[0]} missing from the help of {' '.join(path)}"


def test_the_root_help_lists_every_top_level_command():
    code, out, _ = _run(["--help"])
    assert code == 0
    for name in ROOT.commands:
        assert re.search(rf"\b{re.escape(name)}\b", out), name


def _documented_command_lines() -> list[str]:
    """`denomas-usage ...` in the README's and docs/'s code blocks and inline code."""
    lines = []
    for path in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        lines += re.findall(r"^(?:\.venv/bin/)?denomas-usage ([a-z].*?)(?:\s+#.*)?$", text, re.M)
        lines += re.findall(r"`(?:\.venv/bin/)?denomas-usage ([a-z][^`]*)`", text)
    return lines


README_LINES = _documented_command_lines()


def _parse(words: list[str]) -> dict[str, Any]:
    """The parameters the command named by the first words gets from the rest, without running it."""
    command: Any = ROOT
    while words and words[0] in getattr(command, "commands", {}):
        command, words = command.commands[words[0]], words[1:]
    assert not hasattr(command, "commands"), f"no command in {words}"  # a group: the line names no command
    return command.make_context(command.name, words).params


@pytest.mark.parametrize("line", README_LINES)
def test_the_readme_command_lines_parse(line):
    assert len(README_LINES) >= 15  # the README's examples were found at all
    words = shlex.split(line.replace("[", "").replace("]", ""))  # optional parts are written as [--open]
    _parse([w.split("|")[0] for w in words])  # choices are written as csv|parquet: the first one


def _child_process_commands() -> list[list[str]]:
    """The literal words after `-m streams.cli` in every Python list of streams/, fleet/, bench/ and tests/ (child
    processes), and the `denomas-usage` commands of docker-compose.yml."""
    found = []
    for path in sorted(p for d in ("streams", "fleet", "bench", "tests") for p in (PROJECT_ROOT / d).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.List):
                continue
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for i in range(len(words) - 1):
                if words[i:i + 2] == ["-m", "streams.cli"]:
                    rest = words[i + 2:]
                    found.append(rest[:rest.index(None)] if None in rest else rest)
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    found += [s["command"][1:] for s in compose["services"].values() if s.get("command", [None])[0] == "denomas-usage"]
    return [words for words in found if words]


CHILD_COMMANDS = _child_process_commands()


@pytest.mark.parametrize("words", CHILD_COMMANDS, ids=[" ".join(w) for w in CHILD_COMMANDS])
def test_child_process_commands_name_a_command_and_its_options(words):
    """The words may stop early (the rest is computed): the command must exist and know every option named."""
    assert len(CHILD_COMMANDS) >= 8  # the lists were found at all
    command: Any = ROOT
    while words and words[0] in getattr(command, "commands", {}):
        command, words = command.commands[words[0]], words[1:]
    assert not hasattr(command, "commands"), f"no command in {words}"
    known = {opt for param in command.params for opt in param.opts}
    assert {w for w in words if w.startswith("--")} <= known


def test_options_keep_their_meaning():
    assert _parse(["query", "SELECT 1"])["write"] is False  # read-only unless --write
    assert _parse(["query", "SELECT 1", "--write"])["write"] is True
    check = _parse(["check", "--select", "source:service_ping", "golden_*", "--no-store"])
    assert [*check["select"], *check["selectors"]] == ["source:service_ping", "golden_*"] and check["no_store"]
    show = _parse(["show", "rpt_xmau_monthly", "--scope", "UMAU", "--from", "2026-07", "--to", "2026-08"])
    assert (show["name"], show["scope"], show["month_from"], show["month_to"], show["limit"]) == (
        "rpt_xmau_monthly", "UMAU", "2026-07", "2026-08", 200)
    backtest = _parse(["alerts", "backtest", "--rule", "r", "--from", "2026-06-01"])
    assert str(backtest["from_"]) == "2026-06-01" and backtest["to"] is None
    assert _parse(["demo"]) == {"instances": 40, "weeks": 12, "seed": 42, "keep": False}


@pytest.mark.parametrize("argv", [
    [], ["no-such-command"], ["query"], ["export", "cs-mart", "--format", "xlsx", "--out", "x"],
    ["alerts", "backtest", "--rule", "r", "--from", "yesterday"], ["broker", "stop"], ["reference", "load", "x.csv"],
])
def test_usage_errors_exit_2_with_a_reason(argv):
    code, _, err = _run(argv)
    assert code == 2
    assert argv == [] or err.strip()


@pytest.mark.parametrize("module", ["streams.cli", "streams"])
def test_python_dash_m_runs_the_same_app(module):
    done = subprocess.run([sys.executable, "-m", module, "alerts", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: denomas-usage alerts" in done.stdout and "backtest" in done.stdout


def test_the_console_script_is_installed():
    script = PROJECT_ROOT / ".venv" / "bin" / "denomas-usage"
    if not script.exists():
        pytest.skip("no .venv/bin/denomas-usage (not installed with `make install`)")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "demo" in done.stdout, done.stderr
