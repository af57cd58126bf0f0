"""Stage 4, build: the conda prefix from the lock (py-rattler, hash-checked PyPI install),
the bundled local modules, and the import check in the built environment."""
