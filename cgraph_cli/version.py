"""cgraph's version: one place, read by the package, the CLI, the caches and the build (pyproject.toml)."""

__version__ = "0.1.0"
