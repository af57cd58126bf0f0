"""``--offline``: one switch every door to the network asks before it opens.

The CLI sets it from the command line (``packer.options.make_options``); uv is told
``--offline`` (its cache and local ``--find-links`` only), an index or a registry is never
asked, a conda package or an sdist that would be downloaded is refused by name. Module state,
not an option threaded through every stage: a door that forgets to ask still cannot be
reached with the switch on by the uv commands, and the few Python doors each ask here.
"""

from __future__ import annotations

_state = {"offline": False}

# uv's words when --offline kept it from a package (its hint names the disabled network)
UV_OFFLINE_MISS = "not found in the cache"


def set_offline(on: bool) -> None:
    """Turn the switch for this process (each command sets it, on or off, from its options)."""
    _state["offline"] = on


def offline() -> bool:
    """Whether this run may not touch the network."""
    return _state["offline"]


def uv_args() -> list[str]:
    """uv's own flag for it: packages from its cache and local --find-links only."""
    return ["--offline"] if offline() else []


def hint() -> str:
    """The way out, for every refusal."""
    return ("run once without --offline to fill tritonpack's cache, or give --find-links DIR "
            "holding the packages")
