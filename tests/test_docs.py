"""The manual: the CLI reference is click's own --help, the README stays short, and every
relative link between the pages leads to a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _gen_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_command_page_is_its_help() -> None:
    gen = _gen_cli()
    want = gen.pages()
    problems = []
    for path, text in want.items():
        rel = path.relative_to(ROOT)
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel} differs from --help")
    problems += [f"{p.relative_to(ROOT)} documents no command"
                 for p in sorted(set(gen.PAGES.glob("*.md")) - set(want))]
    assert not problems, "; ".join(problems) + f": run `{gen.REGENERATE}`"


def test_readme_is_short_and_keeps_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert ("pip install -e '.[verify,test,bench]' && tritonpack examples/numpy_model --triton 24.10 "
            "--verify") in readme
    assert "\n.venv/bin/pytest -q\n" in readme


def test_readme_tour_says_which_release_local_verify_runs() -> None:
    """Found on a fresh clone: the tour's `tritonpack models/ --verify` packs new models for
    the newest release, which the local server cannot run (exit 13); the tour says so, with
    the release the local runtime really is."""
    from packer.verify.local import RELEASE

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (f"`--verify` runs here in Triton {RELEASE}'s server (the `nvidia-pytriton` wheel)"
            in readme)
    assert f"packed with `--triton {RELEASE}` or verified in its release's image" in readme


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_lead_to_files() -> None:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)


def test_licence_names_its_spdx_id_as_pyproject_does() -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "Apache-2.0"' in pyproject
    assert licence.startswith("SPDX-License-Identifier: Apache-2.0")
    assert "https://www.apache.org/licenses/LICENSE-2.0" in licence
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence


def test_changelog_has_an_unreleased_section() -> None:
    assert "\n## Unreleased\n" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


# `pip install tritonpack`, `pip install -U 'tritonpack[verify]'`: the bare name from an index
_BARE = re.compile(r"pip install(?:\s+-\S+)*\s+['\"]?tritonpack(?:\[[^\]]*\])?['\"]?(?!\s*@)"
                   r"(?=\s|$|`)")


def test_no_page_or_hint_installs_the_unpublished_name() -> None:
    """tritonpack is not on PyPI: every recipe installs it from its repository at a pinned
    commit (a checkout, or an archive URL of one commit), never the name from an index, which
    anyone could claim."""
    import packer  # its hints: the checkout's, or the wheel's (.ci/run)

    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted(Path(packer.__file__).parent.rglob("*.py"))]
    found = [f"{p.name}: {m.group(0)}" for p in files
             for m in _BARE.finditer(p.read_text(encoding="utf-8"))]
    assert not found, "installs the unpublished name: " + "; ".join(found)
    pinned = re.findall(r"tritonpack(?:\[[^\]]*\])? @ (\S+?)\"", (ROOT / "docs" /
                                                              "release-pipelines.md").read_text())
    assert pinned and all(url.endswith("/archive/COMMIT_SHA.tar.gz") for url in pinned)
