"""Trusted-data checks (DESIGN.md section 2, "checks").

  spec.py          the YAML declarations in clickhouse/checks/*.yml (schema: schemas/checks.schema.json) -> Checks
  model.py         dbt-like tests in SQL: unique grain, not_null, accepted_values, relationships, row_count, golden
  pipeline.py      checks no dbt test can do: freshness per source, dead-letter rate, xMAU month over month
  completeness.py  every raw-topic offset up to the log end is landed or dead-lettered
  runner.py        run a selection, store every result in check_results, print a table, raise alert events

`denomas-usage check [--select ...]` (streams/checks/cli.py) and the worker's schedule (streams/agents/checks.py)
run the same code through the Warehouse interface, on the embedded engine or a ClickHouse server.
"""
