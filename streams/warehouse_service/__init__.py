"""The `warehouse` process: owns the embedded engine's data directory and serves ClickHouse's HTTP interface, so
workers, CLI commands, analysts' tools (clickhouse-connect, curl, Grafana, DBeaver) share one live warehouse."""

from streams.warehouse_service.process import WarehouseServiceProcess
from streams.warehouse_service.server import DirectoryInUse, serve

__all__ = ["DirectoryInUse", "WarehouseServiceProcess", "serve"]
