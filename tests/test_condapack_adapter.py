"""The staging adapter over conda-pack (packer/pack/staging.py) subclasses two classes that are
not conda-pack's public API. This fails, naming what changed, the day a conda-pack release
moves them: read the adapter's comment, then either adapt it or keep the version bound."""

from __future__ import annotations

from importlib.metadata import version

from packer.pack.staging import conda_pack_drift


def test_conda_packs_insides_are_what_the_adapter_was_written_for() -> None:
    drift = conda_pack_drift()
    assert not drift, (f"conda-pack {version('conda-pack')} changed what packer/pack/staging.py's "
                       "adapter overrides: " + "; ".join(drift))


def test_a_change_is_named() -> None:
    """The check is not vacuous: a renamed parameter and a missing method are both said."""
    assert conda_pack_drift((
        ("conda_pack.formats", "NoArchive", "_add", ("self", "src", "dst")),
        ("conda_pack.core", "Packer", "add_many", ("self",)),
    )) == ["conda_pack.formats.NoArchive._add takes (self, source, target), not (self, src, dst)",
           "conda_pack.core.Packer.add_many is gone"]
