"""`erase`: remove a user's, a namespace's or an instance's data (README "Erasure")."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.config import Settings

app = typer.Typer()


@app.command()
def erase(
    user_id: Annotated[str | None, typer.Option(help="the user id as trackers send it (hashed here, never stored)")]
    = None,
    namespace: Annotated[int | None, typer.Option(help="a Denomas.com (SaaS) namespace id")] = None,
    instance: Annotated[str | None, typer.Option(help="a self-managed instance uuid")] = None,
) -> None:
    """Erase one user, namespace or instance from every table and aggregate, keep it erased across replays, and
    print the proof query (README "Erasure")."""
    from streams.erase.run import erase as erase_subject

    raise typer.Exit(erase_subject(Settings.from_env(), user_id=user_id, namespace=namespace, instance=instance))
