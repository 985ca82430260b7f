"""`python -m streams.warehouse_service --port 8123 --data-dir run`: the warehouse process."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from streams.config import Settings
from streams.warehouse_service.server import DirectoryInUse, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warehouse", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--data-dir", type=Path, help="the data directory (default: DENOMAS_DATA_DIR or ./run)")
    parser.add_argument("--users", type=Path, help="users file (YAML or TOML); default: `default`, no password, "
                                                   "loopback only")
    parser.add_argument("--readers", type=int, default=2, help="engine connections for queries")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    overrides = {"data_dir": args.data_dir.resolve()} if args.data_dir else {}
    return run_service(Settings.from_env(**overrides), args.host, args.port, args.users, args.readers, args.loglevel)


def run_service(settings: Settings, host: str, port: int, users: Path | None, readers: int, loglevel: str) -> int:
    """Serve until stopped (also `denomas-usage warehouse`); 3: the data directory is held by another process."""
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)
    try:
        serve(settings, host, port, users_path=users, readers=readers)
    except DirectoryInUse as error:
        print(f"warehouse: {error}", file=sys.stderr)
        return 3
    except (OSError, ValueError) as error:
        print(f"warehouse: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
