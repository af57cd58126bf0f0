"""Stage 5, pack: what goes in (staging with conda-pack, pruning, bytecode, the stdlib zip),
where it goes (output) and its SBOM. How it is written lives in ``packer.archive``, how it is
judged in ``packer.envcheck``, and what is reused in ``packer.caches``."""
