"""Denomas product usage data: HTTP collectors -> Kafka -> Faust agents -> ClickHouse."""

__version__ = "0.1.0"
