"""Stage 3, lock: the lock file (``tritonpack.lock``) and the resolvers behind it: PyPI pins
(uv or pip-tools), the conda solve (py-rattler), and local CPython turned into a conda channel."""
