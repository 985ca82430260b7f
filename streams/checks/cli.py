"""`denomas-usage check`: run the trusted-data checks, print them, store them, fail on errors
(the command line is streams/cli/checks.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from streams.config import Settings


def cmd_check(settings: Settings, select: Sequence[str], store: bool = True) -> int:
    """Exit status: 0 when no check fails at error level, 1 when one does, 2 on a bad selector or spec."""
    from streams.checks.runner import format_run, run_checks
    from streams.checks.spec import SpecError
    from streams.cli.common import connected, progress_to_stderr

    try:
        with connected(settings, migrated=True) as warehouse, progress_to_stderr("checks") as progress:
            run = run_checks(warehouse, settings, select, bootstrap=settings.kafka_bootstrap_servers, store=store,
                             progress=progress)
    except (SpecError, LookupError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    print(format_run(run))
    return 1 if run.failed else 0
