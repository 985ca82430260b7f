"""Reference data: licenses, subscriptions, CRM and billing accounts, namespaces and account mappings.

  kinds.py   one description per kind (table, natural id, topic, columns), parsing and validating a record
             (the license -> subscription -> account rule is one view, prep_license_match: clickhouse/038)
  load.py    CSV files in and out, publishing to the compacted ref topics, the match-rate report
  (the agent that lands the ref topics in the dim_ tables and keeps the Faust tables: streams/agents/reference.py;
  the command line: streams/cli/reference.py; the writer: streams/warehouse/writers.py)
"""
