"""Stage 5, pack: what goes in (staging with conda-pack, pruning, bytecode) and how it is
written (tar, parallel gzip, stamp), the environment check, the local and remote env caches
and the SBOM."""
