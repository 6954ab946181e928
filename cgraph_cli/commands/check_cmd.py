"""cgraph check (registered when implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
