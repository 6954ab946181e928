"""The graph IR: nodes in topological order (graph.py) and the one naming of nodes (names.py)."""
