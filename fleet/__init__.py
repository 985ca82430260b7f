"""The sample fleet: deterministic sample data for the demo, the tests and the benchmarks, never used by the pipeline.

  pings.py          Service Pings of a fleet of instances over some weeks (the seed fixes everything), drawn from
  instances.py      the instances (editions, licenses, nodes, adoption, scenario) and
  ping_catalog.py   what a ping holds (metric paths by kind, editions, releases, host and service shapes)
  snowplow.py       Snowplow tracker events of the same fleet: their shapes, the rows each should produce, sending
  snowplow_events.py  generating them (generate_snowplow)
  seat_link.py      Seat Link reports and Version Checks of the same fleet
  reference.py      CRM reference data (licenses, subscriptions, accounts, namespaces) matching the fleet
  events.py         event samples for the event metrics
  event_metrics.py  the event metric rows computed in Python from the generated events (an independent check)
  demo.py           `denomas-usage demo`: sends the fleet through a running pipeline and compares what landed
  alert_latency.py  the alert-latency measurement shared by bench/service_ping.py and its smaller test
"""
