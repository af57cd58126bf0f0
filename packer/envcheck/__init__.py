"""Judging an environment against a Triton target without running it: the gate every packed or
pulled environment passes, ELF symbol versions, and ``tritonpack inspect``."""
