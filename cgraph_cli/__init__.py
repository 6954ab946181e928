"""cgraph: a command-line computation-graph evaluator and visualiser."""

__version__ = "0.1.0"
