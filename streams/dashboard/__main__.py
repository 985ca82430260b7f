"""`python -m streams.dashboard [--host H] [--port P]`: how DashboardProcess starts it (same as the CLI command)."""

from __future__ import annotations

import argparse
import sys

from streams.config import Settings
from streams.dashboard import dashboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streams.dashboard")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default DENOMAS_DASHBOARD_PORT or 8050")
    args = parser.parse_args(argv)
    return dashboard(Settings.from_env(), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
