"""The file system an archive would create, replayed entry by entry, to judge every path.

A lexical check of one link at a time is not enough: ``lib/up -> ..`` is harmless, and so is
``lib/esc -> up/..`` read on its own, yet together they point above the extraction dir, and an
entry ``lib/esc/x`` is then written outside it. So every entry is replayed, in archive order,
into a small virtual tree (name -> directory, file or link), and each path is resolved through
every link defined so far, as an extractor would:

* an entry's parent path must not pass through a symlink (the write would land wherever the
  link points: Triton 26.06+ refuses writes through symlinks, older releases follow them);
* a symlink's target, resolved through the links defined before it and again through the
  final tree (a link may be retargeted by a later entry), must stay inside the root;
* a hard link must name a regular file defined earlier, reached without passing a symlink.

The same replay serves archives (``inspect``, ``verify``, ``check``) and the tree ``pack``
is about to write; a directory environment is also checked by real path (``escapes_dir``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_LINKS = 40  # Linux's limit on symlinks followed in one lookup (ELOOP)


class _Escape(Exception):
    """A path leaves the root, or loops."""


@dataclass(frozen=True)
class Node:
    kind: str  # dir | file | symlink | hardlink | other
    link: str = ""


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name.removeprefix("./")).parts if p not in ("", "."))


class ArchiveFS:
    """The tree an extraction would leave, built entry by entry."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, ...], Node] = {}

    def resolve(self, parts: Iterable[str], *, follow_last: bool = True,
                budget: list[int] | None = None) -> tuple[tuple[str, ...], bool]:
        """(resolved path, whether a symlink was passed) for ``parts`` from the root.

        Raises _Escape when the path climbs above the root, is absolute through a link, or
        follows more than MAX_LINKS links."""
        budget = budget if budget is not None else [MAX_LINKS]
        todo = list(parts)
        done: list[str] = []
        through = False
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    raise _Escape
                done.pop()
                continue
            done.append(part)
            node = self.nodes.get(tuple(done))
            if node is not None and node.kind == "symlink" and (todo or follow_last):
                budget[0] -= 1
                if budget[0] < 0 or node.link.startswith("/"):
                    raise _Escape
                through = through or bool(todo)
                done.pop()
                todo = list(_parts_keep_dots(node.link)) + todo
        return tuple(done), through

    def add(self, name: str, kind: str, link: str = "") -> str | None:
        """Record one entry; return why it is unsafe, or None."""
        raw = name.removeprefix("./")
        if raw.startswith("/"):
            return f"absolute path {name}"
        if ".." in PurePosixPath(raw).parts:
            return f"path with '..': {name}"
        parts = _parts(raw)
        if not parts:
            return None  # the root itself ("./")
        try:
            parent, through = self.resolve(parts[:-1])
        except _Escape:
            return f"{name} is written through a symlink that leaves the environment"
        if through or parent != parts[:-1]:
            return f"{name} is written through a symlink ({'/'.join(parts[:-1])})"
        why: str | None = None
        if kind == "symlink":
            why = self._link_escapes(parts, link)
        elif kind == "hardlink":
            why = self._hardlink_bad(name, link)
        self.nodes[parts] = Node(kind, link)
        return why

    def _link_escapes(self, parts: tuple[str, ...], link: str) -> str | None:
        shown = "/".join(parts)
        if link.startswith("/"):
            return f"symlink {shown} -> {link} leaves the environment"
        try:
            self.resolve((*parts[:-1], *_parts_keep_dots(link)))
        except _Escape:
            return f"symlink {shown} -> {link} leaves the environment"
        return None

    def _hardlink_bad(self, name: str, link: str) -> str | None:
        raw = link.removeprefix("./")
        if raw.startswith("/") or ".." in PurePosixPath(raw).parts:
            return f"hard link {name} -> {link} leaves the environment"
        parts = _parts(raw)
        try:
            resolved, through = self.resolve(parts, follow_last=False)
        except _Escape:
            return f"hard link {name} -> {link} leaves the environment"
        node = self.nodes.get(resolved)
        if through or resolved != parts:
            return f"hard link {name} -> {link} passes through a symlink"
        if node is None or node.kind not in ("file", "hardlink"):
            return f"hard link {name} -> {link} names no file earlier in the archive"
        return None

    def final_escapes(self) -> list[str]:
        """Symlinks that leave the root in the finished tree (a later entry may retarget a
        link that an earlier one points through)."""
        out = []
        for parts, node in sorted(self.nodes.items()):
            if node.kind == "symlink" and (why := self._link_escapes(parts, node.link)):
                out.append(why)
        return out


def _parts_keep_dots(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p not in ("", "."))


def check_entries(entries: Iterable[tuple[str, str, str]]) -> list[str]:
    """Every reason the (name, kind, link) entries, in archive order, are unsafe."""
    fs = ArchiveFS()
    out = [why for name, kind, link in entries if (why := fs.add(name, kind, link))]
    return out + [w for w in fs.final_escapes() if w not in out]


def escapes_dir(root: Path, path: Path) -> bool:
    """Whether ``path`` (inside the directory env ``root``) really lands outside it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real != real_root and not real.startswith(real_root + os.sep)
