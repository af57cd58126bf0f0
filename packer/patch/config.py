"""Point config.pbtxt at the environment: an edit of bytes that keeps every other byte.

The user's file keeps its comments, order, formatting, line endings (CRLF stays CRLF, an
inserted block uses the file's own) and byte-order mark: it is read and written as bytes,
never through a newline-translating text layer. A symlinked config.pbtxt is followed to a
file inside the model directory and that file is patched (the link stays); a link leading
anywhere else is refused. The edit is checked
by parsing the result with Triton's ModelConfig: it must equal the original
plus (or with a replaced) EXECUTION_ENV_PATH parameter, or nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes
from ..core.errors import ConfigPatchError
from ..scan.model import EXECUTION_ENV_PATH, TOKEN, parse_config

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}\[\]<>:;,])
  | (?P<word>[^\s{}\[\]<>:;,"'\#]+)
    """,
    re.X,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ConfigPatchError(f"config.pbtxt: cannot read character {text[pos]!r} at {pos}")
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), m.start(), m.end()))
        pos = m.end()
    return out


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _match_close(toks: list[_Tok], i: int) -> int:
    """Index of the bracket closing toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "punct" and toks[j].text in "{[<":
            depth += 1
        elif toks[j].kind == "punct" and toks[j].text in "}]>":
            depth -= 1
            if depth == 0:
                return j
    raise ConfigPatchError("config.pbtxt: unbalanced braces")


def _messages_of(toks: list[_Tok], field: str) -> list[tuple[int, int]]:
    """Spans (open, close) of every top-level message value of ``field``."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "punct" and t.text in "{[<":
            i = _match_close(toks, i) + 1
            continue
        if t.kind == "word" and t.text == field:
            j = i + 1
            if j < len(toks) and toks[j].text == ":":
                j += 1
            if j < len(toks) and toks[j].text == "[":
                end = _match_close(toks, j)
                k = j + 1
                while k < end:
                    if toks[k].text in "{<":
                        close = _match_close(toks, k)
                        spans.append((k, close))
                        k = close
                    k += 1
                i = end + 1
                continue
            if j < len(toks) and toks[j].text in "{<":
                close = _match_close(toks, j)
                spans.append((j, close))
                i = close + 1
                continue
        i += 1
    return spans


def _string_after(toks: list[_Tok], lo: int, hi: int, field: str) -> tuple[int, int] | None:
    """Token range [a, b) of the (possibly concatenated) string value of ``field`` in lo..hi."""
    for i in range(lo, hi):
        if toks[i].kind == "word" and toks[i].text == field:
            j = i + 1
            if j < hi and toks[j].text == ":":
                j += 1
            k = j
            while k < hi and toks[k].kind == "string":
                k += 1
            if k > j:
                return j, k
    return None


def _env_value_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, template) of every EXECUTION_ENV_PATH value: a literal to replace, or a
    place to insert one (template holds ``{}`` for the quoted value; "" means the literal)."""
    toks = _tokens(text)
    found: list[tuple[int, int, str]] = []
    for lo, hi in _messages_of(toks, "parameters"):
        key = _string_after(toks, lo + 1, hi, "key")
        if key is None:
            continue
        if "".join(_unquote(toks[n].text) for n in range(*key)) != EXECUTION_ENV_PATH:
            continue
        val = _string_after(toks, lo + 1, hi, "string_value")
        if val is not None:
            found.append((toks[val[0]].start, toks[val[1] - 1].end, ""))
            continue
        # an empty value (`value { }`) or none at all: insert the field
        brace = _value_brace(toks, lo + 1, hi)
        if brace is not None:
            found.append((toks[brace].end, toks[brace].end, " string_value: {} "))
        else:
            found.append((toks[hi].start, toks[hi].start, " value {{ string_value: {} }} "))
    return found


def _value_brace(toks: list[_Tok], lo: int, hi: int) -> int | None:
    """Index of the opening brace of the entry's ``value`` message, if present."""
    for i in range(lo, hi):
        if toks[i].kind == "word" and toks[i].text == "value":
            j = i + 1
            if j < hi and toks[j].text == ":":
                j += 1
            if j < hi and toks[j].text in "{<":
                return j
    return None


def env_value(archive_name: str) -> str:
    return f"{TOKEN}/{archive_name}"


def patched_text(text: str, value: str) -> str:
    """The config text with EXECUTION_ENV_PATH set to ``value``; everything else byte-identical."""
    spans = _env_value_spans(text)
    if spans:
        out = text
        for start, end, template in reversed(spans):
            new = template.format(_quote(value)) if template else _quote(value)
            out = out[:start] + new + out[end:]
        return out
    nl = "\r\n" if "\r\n" in text else "\n"
    sep = "" if text.endswith("\n") or not text else nl
    block = nl.join(["parameters {", f'  key: "{EXECUTION_ENV_PATH}"',
                     f"  value: {{ string_value: {_quote(value)} }}", "}", ""])
    return f"{text}{sep}{block}"


BOM = b"\xef\xbb\xbf"


def _decode(data: bytes) -> tuple[bytes, str]:
    """(byte-order mark, text): every byte round-trips (surrogateescape), no newline changes."""
    bom = BOM if data.startswith(BOM) else b""
    return bom, data[len(bom):].decode("utf-8", errors="surrogateescape")


def _encode(bom: bytes, text: str) -> bytes:
    return bom + text.encode("utf-8", errors="surrogateescape")


def config_target(config_path: Path) -> Path:
    """The file to patch: config.pbtxt, or the file inside the model dir that it links to."""
    if not config_path.is_symlink():
        return config_path
    model_dir = config_path.parent.resolve()
    real = config_path.resolve()
    if not real.is_relative_to(model_dir):
        raise ConfigPatchError(f"{config_path} is a symlink to {real}, outside the model "
                               "directory: tritonpack writes only inside it",
                               hint="replace the link by a copy of the file")
    if not real.is_file():
        raise ConfigPatchError(f"{config_path} is a symlink to {real}, which is not a file")
    return real


def _expected(original: Any, value: str) -> Any:
    want = type(original)()
    want.CopyFrom(original)
    want.parameters[EXECUTION_ENV_PATH].string_value = value
    return want


@dataclass(frozen=True)
class PatchResult:
    path: Path
    value: str
    changed: bool


@dataclass(frozen=True)
class PlannedPatch:
    """A checked edit of config.pbtxt (bytes), not yet written, and the file it goes to."""

    original: bytes
    new: bytes
    target: Path | None = None  # the real file (config.pbtxt, or what it links to)


def check_patch(config_path: Path, value: str) -> PlannedPatch:
    """The edit that sets EXECUTION_ENV_PATH, refused unless it changes nothing else."""
    if not value.startswith(TOKEN):
        raise ConfigPatchError(f"EXECUTION_ENV_PATH must start with {TOKEN}, got {value!r}")
    target = config_target(config_path)
    data = target.read_bytes()
    bom, text = _decode(data)
    original = parse_config(text, config_path)
    new_text = patched_text(text, value)
    try:
        result = parse_config(new_text, config_path)
    except Exception as exc:
        raise ConfigPatchError(
            f"{config_path}: the patched file would not parse; left unchanged", detail=str(exc)
        ) from exc
    if result != _expected(original, value):
        raise ConfigPatchError(
            f"{config_path}: the patch would change more than EXECUTION_ENV_PATH; left unchanged"
        )
    return PlannedPatch(data, _encode(bom, new_text), target)


def apply_patch(config_path: Path, plan: PlannedPatch, value: str) -> PatchResult:
    """Write a checked edit atomically, unless the file changed since it was checked."""
    target = plan.target or config_target(config_path)
    if target.read_bytes() != plan.original:
        raise ConfigPatchError(f"{config_path} changed while tritonpack ran; left as it is now",
                               hint="run tritonpack again")
    if plan.new == plan.original:
        return PatchResult(config_path, value, changed=False)
    atomic_write_bytes(target, plan.new)
    return PatchResult(config_path, value, changed=True)


def patch_config(config_path: Path, value: str) -> PatchResult:
    """Set EXECUTION_ENV_PATH in ``config_path`` atomically; refuse anything but that change."""
    return apply_patch(config_path, check_patch(config_path, value), value)
