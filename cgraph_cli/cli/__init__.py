"""The command line: the entry point, the fast start-up path, the Typer commands and terminal text."""
