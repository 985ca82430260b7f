"""`denomas-usage alerts validate | backtest | list` on a real embedded warehouse holding the sample rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from streams.alerts import store
from streams.alerts.engine import Engine
from streams.alerts.landed import Landed
from streams.alerts.rules import parse_config
from streams.cli import main
from streams.config import Settings
from streams.warehouse import migrate, open_warehouse
from tests.support.alert_samples import MONDAY, RULES, metric_rows, ping_rows, reference

WEEK = [(MONDAY + timedelta(weeks=i)).isoformat() for i in range(8)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A warehouse with the sample pings, evaluated once by the engine (as the worker would have)."""
    root = tmp_path_factory.mktemp("alerts-cli")
    wh = open_warehouse(Settings.from_env())
    try:
        migrate(wh)
        reference(wh)
        pings = ping_rows()
        wh.insert("fct_ping_instance", pings)
        wh.insert("fct_ping_instance_metric", metric_rows(pings))
        engine = Engine(wh, parse_config(RULES, "test"), clock=lambda: datetime(2026, 11, 30, tzinfo=UTC))
        evaluation = engine.evaluate([Landed("service_ping", "instance", p["installation_id"]) for p in pings])
        store.write_evaluation(wh, evaluation.alert_rows, evaluation.state_rows)
    finally:
        wh.close()
    (root / "rules.yml").write_text(yaml.safe_dump(RULES))
    (root / "database").write_text(os.environ["DENOMAS_WAREHOUSE_DATABASE"])  # where the CLI must look
    return root


def _run(args: list[str], data_dir, monkeypatch, capsys) -> tuple[int, list[list[str]], str]:
    monkeypatch.setenv("DENOMAS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DENOMAS_WAREHOUSE_DATABASE", (data_dir / "database").read_text())  # the fixture's
    code = main(args)
    out = capsys.readouterr()
    return code, [line.split() for line in out.out.splitlines()], out.err


def test_backtest_prints_what_the_rule_would_have_fired(data_dir, monkeypatch, capsys):
    code, lines, err = _run(["alerts", "backtest", "--rules", str(data_dir / "rules.yml"), "--rule", "sub_users"],
                            data_dir, monkeypatch, capsys)
    assert code == 0
    assert [line.split(" (")[0] for line in err.splitlines()] == ["  scopes replayed 1/2", "  scopes replayed 2/2"]
    rows = [line[:7] for line in lines if line and line[0] in WEEK]
    # sub-1 = inst-a + inst-b: 163 -> 111 (-52 >= 40) in week 3, back to 159 in week 5 (>= 90 % of 163 = 146.7)
    assert rows == [[WEEK[3], "open", "subscription", "sub-1", "111", "163", "123"],
                    [WEEK[5], "resolved", "subscription", "sub-1", "159", "163", "146.7"]]
    assert lines[-1] == ["(1", "opened,", "1", "resolved,", "over", "2", "scopes)"]
    code, lines, _ = _run(["alerts", "backtest", "--rules", str(data_dir / "rules.yml"), "--rule", "sub_users",
                           "--from", WEEK[4]], data_dir, monkeypatch, capsys)
    assert [line[:2] for line in lines if line and line[0] in WEEK] == [[WEEK[5], "resolved"]]


def test_list_shows_the_stored_alerts(data_dir, monkeypatch, capsys):
    code, lines, _ = _run(["alerts", "list"], data_dir, monkeypatch, capsys)
    assert code == 0
    listed = sorted((line[0], line[1], line[2], line[4]) for line in lines if line and line[0] in WEEK)
    assert listed == sorted([
        (WEEK[3], "resolved", "inst_users", "inst-a"), (WEEK[3], "resolved", "inst_umau", "inst-a"),
        (WEEK[4], "resolved", "inst_umau", "inst-c"), (WEEK[3], "resolved", "sub_users", "sub-1"),
        (WEEK[3], "resolved", "acct_users", "acct-1"), (WEEK[7], "open", "acct_users", "acct-1")])
    code, lines, _ = _run(["alerts", "list", "--open"], data_dir, monkeypatch, capsys)
    assert [(line[0], line[1], line[4]) for line in lines if line and line[0] in WEEK] == [
        (WEEK[7], "open", "acct-1")]
    code, lines, _ = _run(["alerts", "list", "--since", WEEK[4]], data_dir, monkeypatch, capsys)
    assert sorted(line[0] for line in lines if line and line[0] in WEEK) == [WEEK[4], WEEK[7]]


def test_validate_reports_problems_and_exit_codes(data_dir, tmp_path, monkeypatch, capsys):
    code, lines, _ = _run(["alerts", "validate", "--rules", str(data_dir / "rules.yml")], data_dir, monkeypatch,
                          capsys)
    assert code == 0 and lines[-1][-1] == "valid"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"rules": [{"name": "x", "scope": "planet"}]}))
    code, _, err = _run(["alerts", "validate", "--rules", str(bad)], data_dir, monkeypatch, capsys)
    assert code == 1
    assert f"{bad}: rule 'x': scope: must be one of instance, subscription, account, namespace" in err
    code, _, err = _run(["alerts", "backtest", "--rules", str(data_dir / "rules.yml"), "--rule", "nope"], data_dir,
                        monkeypatch, capsys)
    assert code == 2 and "no rule named 'nope'" in err
