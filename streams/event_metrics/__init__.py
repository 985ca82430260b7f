"""Event metrics in the warehouse: daily states recomputed from the facts, rolling 7/28-day windows from them.

  definitions.py  the metric definitions (schemas/event_metrics/**/*.yml)
  sql.py          scopes and the SQL that turns daily states into metric values
  refresh.py      materialization: mark_touched, refresh_pending, recompute_days, rebuild_event_metrics
  read.py         metric_series, active_users, saas_monthly_users_by_stage
  (the worker's timer: streams/agents/event_metrics.py)

Derived tables are exactly once whatever the moment of a crash (clickhouse/071): a daily state is a pure function of
the facts of its day, recomputed rather than added to, so a redelivered batch or a worker killed mid-insert can
leave a day pending, never counted twice or short:

- ``mark_touched``: the sink records the event days of each batch it stored (after the facts insert returned).
- ``refresh_pending``: recomputes the daily states (agg_behavior_event_daily, agg_behavior_active_daily: an exact
  bitmap of user hashes and an event count per UTC day x scope (x event)) of every touched day from
  fct_behavior_structured_event, then ``refresh_event_metrics`` recomputes ``agg_event_metric_daily`` for the window
  end days those days affect (a late event on day d changes the windows ending on d..d+27, d..horizon for all-time
  totals), then marks the days refreshed. The Snowplow sink runs it before it acks a batch; the worker's timer runs
  it too (for other writers: replays, backfills, and the horizon moving with the date).
- ``metric_series`` / ``active_users`` / ``active_users_28d``: per scope and day; subscription and account scopes
  join the namespace states to ``dim_namespace FINAL`` at query time, so late reference data applies to history.
- ``saas_monthly_users_by_stage``: SaaS users per month x stage x group x metric, for xMAU.

Windows are UTC days: the window ending on day D covers D-6..D (7d) or D-27..D (28d). End days are materialized up
to the data horizon (newest event day, capped at today); a missing row means 0. Metrics merge daily states, so a
query's cost depends on days x scopes (x events), never on raw event volume.
"""
