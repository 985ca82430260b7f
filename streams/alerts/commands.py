"""`denomas-usage alerts list | backtest | validate` (mounted by streams/cli.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from streams.config import Settings


def _config(args: argparse.Namespace, settings: Settings) -> Any:
    from streams.alerts.rules import load_rules, metric_time_frames
    from streams.enrich.metric_dictionary import MetricDictionary

    return load_rules(args.rules or settings.alert_rules, metrics=metric_time_frames(MetricDictionary.from_dir()))


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerts.rules import RuleError

    try:
        config = _config(args, settings)
    except RuleError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{config.source}: {len(config.rules)} rules ({len(config.active())} enabled), "
          f"{len(config.destinations)} destinations: valid")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerts.store import list_alerts
    from streams.tables import format_table
    from streams.warehouse import open_warehouse

    warehouse = open_warehouse(settings)
    try:
        alerts = list_alerts(warehouse, open_only=args.open, since=args.since)
    finally:
        warehouse.close()
    headers = ["opened", "state", "rule", "scope", "id", "value", "baseline", "resolved", "recovered to", "alert_id"]
    rows = [(a["opened_period"], a["state"], a["rule"], a["scope_type"], a["scope_id"], a["opened_value"],
             a["baseline"], a["resolved_period"], a["resolved_value"], a["alert_id"]) for a in alerts]
    print(format_table(headers, rows))
    print(f"({len(rows)} alerts, {sum(1 for a in alerts if a['state'] == 'open')} open)")
    return 0


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerts.evaluate import Scope, backtest
    from streams.alerts.rules import RuleError
    from streams.alerts.signals import SignalReader
    from streams.tables import format_table
    from streams.warehouse import open_warehouse

    try:
        rule = _config(args, settings).rule(args.rule)
    except RuleError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    warehouse = open_warehouse(settings)
    try:
        reader = SignalReader(warehouse)
        why = reader.missing(rule)
        if why:
            print(f"rule {rule.name} cannot be evaluated on this warehouse: {why}", file=sys.stderr)
            return 1
        series = reader.series(rule, None, None, date.today())
    finally:
        warehouse.close()
    fired = backtest(rule, {Scope(rule.scope, sid): points for sid, points in series.items()}, args.from_, args.to)
    rows = [(t.period.isoformat(), t.state, t.scope.type, t.scope.id, t.value, t.baseline,
             t.threshold if t.state == "open" else t.recovery,
             round((t.value - t.baseline) / t.baseline * 100, 1) if t.baseline else None, t.alert_id) for t in fired]
    print(format_table(["period", "state", "scope", "id", "value", "baseline", "threshold", "change %", "alert_id"],
                       rows, title=f"backtest of {rule.name} ({rule.signal.describe()}, {rule.condition.type})"))
    opened = sum(1 for t in fired if t.state == "open")
    print(f"({opened} opened, {len(fired) - opened} resolved, over {len(series)} scopes)")
    return 0


def add_commands(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="alerts on active-user drops: list, backtest a rule, validate rules")
    actions = alerts.add_subparsers(dest="alerts_command", required=True)
    rules = argparse.ArgumentParser(add_help=False)
    rules.add_argument("--rules", type=Path, default=None,
                       help="rule file (default: DENOMAS_ALERT_RULES or schemas/alert_rules.yml)")

    listing = actions.add_parser("list", help="alerts in the warehouse")
    listing.add_argument("--open", action="store_true", help="only alerts that are still open")
    listing.add_argument("--since", type=date.fromisoformat, default=None, help="opened on or after (YYYY-MM-DD)")
    listing.set_defaults(func=cmd_list)

    replay = actions.add_parser("backtest", parents=[rules], help="replay a rule over history: what it would fire")
    replay.add_argument("--rule", required=True)
    replay.add_argument("--from", dest="from_", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    replay.add_argument("--to", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    replay.set_defaults(func=cmd_backtest)

    actions.add_parser("validate", parents=[rules], help="check the rule file").set_defaults(func=cmd_validate)
