"""Data, not code: Triton releases, import names, torch indexes (read with importlib.resources)."""
