"""Presenters: results as data, tables, text, DOT and images. They return; only the CLI prints."""
