"""Shared ground beneath the stages: one error tree (exit codes), the one subprocess door, atomic
files, the cache, progress, signals, run locks, debris sweeping, the commit journal, integrity
records and the secrets filter.  Nothing here imports a stage."""
