"""Alerts on active-user drops: `alerts list | backtest | validate`."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.common import connected, progress_to_stderr
from streams.config import Settings

app = typer.Typer()
alerts = typer.Typer(help="Alerts on active-user drops: list them, backtest a rule, validate the rules.",
                     no_args_is_help=True)
app.add_typer(alerts, name="alerts")

RulesOption = Annotated[Path | None, typer.Option(help="rule file (default: DENOMAS_ALERT_RULES or "
                                                       "schemas/alert_rules.yml)", show_default=False)]


def _config(rules: Path | None, settings: Settings) -> Any:
    from streams.alerts.rules import load_rules, metric_time_frames
    from streams.enrich.metric_dictionary import MetricDictionary

    return load_rules(rules or settings.alert_rules, metrics=metric_time_frames(MetricDictionary.from_dir()))


@alerts.command()
def validate(rules: RulesOption = None) -> None:
    """Check the rule file against its schema and the metric dictionary; exit 1 if it is not valid."""
    from streams.alerts.rules import RuleError

    try:
        config = _config(rules, Settings.from_env())
    except RuleError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(1) from exc
    print(f"{config.source}: {len(config.rules)} rules ({len(config.active())} enabled), "
          f"{len(config.destinations)} destinations: valid")


@alerts.command("list")
def list_(
    open_: Annotated[bool, typer.Option("--open", help="only alerts that are still open")] = False,
    since: Annotated[date | None, typer.Option(parser=date.fromisoformat, metavar="YYYY-MM-DD",
                                               help="opened on or after", show_default=False)] = None,
) -> None:
    """The alerts in the warehouse, newest first."""
    from streams.alerts.store import list_alerts
    from streams.tables import format_table

    with connected() as warehouse:
        found = list_alerts(warehouse, open_only=open_, since=since)
    headers = ["opened", "state", "rule", "scope", "id", "value", "baseline", "resolved", "recovered to", "alert_id"]
    rows = [(a["opened_period"], a["state"], a["rule"], a["scope_type"], a["scope_id"], a["opened_value"],
             a["baseline"], a["resolved_period"], a["resolved_value"], a["alert_id"]) for a in found]
    print(format_table(headers, rows))
    print(f"({len(rows)} alerts, {sum(1 for a in found if a['state'] == 'open')} open)")


@alerts.command()
def backtest(
    rule: Annotated[str, typer.Option(help="name of the rule to replay")],
    rules: RulesOption = None,
    from_: Annotated[date | None, typer.Option("--from", parser=date.fromisoformat, metavar="YYYY-MM-DD",
                                               help="first period", show_default=False)] = None,
    to: Annotated[date | None, typer.Option(parser=date.fromisoformat, metavar="YYYY-MM-DD",
                                            help="last period", show_default=False)] = None,
) -> None:
    """Replay a rule over the warehouse's history: what it would have fired and resolved."""
    from streams.alerts.evaluate import Scope
    from streams.alerts.evaluate import backtest as replay
    from streams.alerts.rules import RuleError
    from streams.alerts.signals import SignalReader
    from streams.tables import format_table

    settings = Settings.from_env()
    try:
        chosen = _config(rules, settings).rule(rule)
    except RuleError as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(2) from exc
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        raise typer.Exit(2) from exc
    with connected(settings) as warehouse:
        reader = SignalReader(warehouse)
        why = reader.missing(chosen)
        if why:
            print(f"rule {chosen.name} cannot be evaluated on this warehouse: {why}", file=sys.stderr)
            raise typer.Exit(1)
        series = reader.series(chosen, None, None, date.today())
    with progress_to_stderr("scopes replayed", len(series)) as progress:
        fired = replay(chosen, {Scope(chosen.scope, sid): points for sid, points in series.items()}, from_, to,
                       progress=progress)
    rows = [(t.period.isoformat(), t.state, t.scope.type, t.scope.id, t.value, t.baseline,
             t.threshold if t.state == "open" else t.recovery,
             round((t.value - t.baseline) / t.baseline * 100, 1) if t.baseline else None, t.alert_id) for t in fired]
    print(format_table(["period", "state", "scope", "id", "value", "baseline", "threshold", "change %", "alert_id"],
                       rows, title=f"backtest of {chosen.name} ({chosen.signal.describe()}, {chosen.condition.type})"))
    opened = sum(1 for t in fired if t.state == "open")
    print(f"({opened} opened, {len(fired) - opened} resolved, over {len(series)} scopes)")
