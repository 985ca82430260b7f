"""Alerts on active-user drops, evaluated as data lands (DESIGN.md section 2, "alerts").

  rules.py     the YAML rule file: load and validate (pure)
  evaluate.py  conditions, the per-scope state machine, replay/backtest (pure)
  series.py    turning stored rows into one series per scope: period buckets, roll-ups (pure)
  signals.py   the SQL that reads a signal for a set of scopes from the warehouse
  store.py     the alerts / alert_scope_state / alert_delivery tables
  delivery.py  event JSON, webhook signing, Slack text, retry schedule

The agents that run all this live in streams/agents/alerts.py; the benchmarks' alert latency in
fleet/alert_latency.py.
"""
