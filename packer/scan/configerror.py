"""config.pbtxt parse errors, said for the person who typed the file: line and column, the
token found there, and for a misspelt field or enum value the nearest name the schema
(``packer.scan.modelconfig``) declares ("did you mean max_batch_size?").

protobuf's own messages name message types by their full name, quote the whole line, and leave
out what was found ("Expected ","."); each is rewritten here from its text, the one interface
protobuf gives, with its original kept as the error's detail.
"""

from __future__ import annotations

import difflib
import re

_QUOTED_LINE = re.compile(r"^'.*?': (?=[A-Z])", re.S)  # protobuf quotes the line first
_NO_FIELD = re.compile(r'^Message type "[\w.]+?\.(\w+)" has no field named "([^"]+)"\.?$')
_NO_VALUE = re.compile(r'^Enum type "[\w.]+?\.(\w+)" has no value named (\S+?)\.?$')
_TWICE = re.compile(r'^Message type "[\w.]+?\.(\w+)" should not have multiple "(\w+)" fields\.?$')
_EXPECTED = re.compile(r'^Expected "(.+)"\.?$')
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[\w.+-]+|\S')


# Names written in config.pbtxt from the client APIs' spelling: Triton's BYTES tensors (the
# protocol's and tritonclient's name) are TYPE_STRING in ModelConfig; spelling alone would
# suggest TYPE_INT8, a wrong fix that parses.
_API_NAMES = {"TYPE_BYTES": "TYPE_STRING (the API's BYTES is TYPE_STRING in config.pbtxt)"}


def _close(word: str, names: list[str]) -> str:
    if word in _API_NAMES:
        return f": did you mean {_API_NAMES[word]}?"
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f": did you mean {close[0]}?" if close else ""


def _fields(message: str) -> list[str]:
    from .modelconfig import PACKAGE, _pool

    for full in (f"{PACKAGE}.{message}", *(f"{PACKAGE}.{m}" for m in _nested(message))):
        try:
            return [f.name for f in _pool().FindMessageTypeByName(full).fields]
        except KeyError:
            continue
    return []


def _nested(name: str) -> list[str]:
    """Full names ending in ``.name`` (a nested message protobuf names by its last part)."""
    from .modelconfig import SCHEMA

    return [m[1] for m in re.finditer(rf"^message ([\w.]+\.{name})$", SCHEMA, re.M)]


def _values(enum: str) -> list[str]:
    from .modelconfig import PACKAGE, SCHEMA, _pool

    fulls = [enum, *(m[1] for m in re.finditer(rf"^enum ([\w.]+\.{enum})$", SCHEMA, re.M))]
    for full in fulls:
        try:
            return [v.name for v in _pool().FindEnumTypeByName(f"{PACKAGE}.{full}").values]
        except KeyError:
            continue
    return []


def _content(text: str) -> bool:
    """Whether ``text`` holds anything but blanks and # comments."""
    return any(line.split("#")[0].strip() for line in text.splitlines())


def found_at(text: str, line: int, col: int) -> str:
    """The token at line:col (1-based), as a message quotes it; at the last token of the file
    protobuf has met the end of it (it reports where it stood)."""
    lines = text.splitlines(keepends=True)
    if not 0 < line <= len(lines):
        return "the end of the file"
    offset = sum(len(x) for x in lines[:line - 1]) + col - 1
    match = _TOKEN.search(text, offset)
    if match is None or not _content(text[match.start():]):
        return "the end of the file"
    if not _content(text[match.end():]):
        return f"the end of the file (after {match[0][:40]!r})"
    return repr(match[0][:40])


def explain(why: str, text: str, line: int, col: int) -> str:
    """One sentence for protobuf's parse error ``why`` at line:col of ``text``."""
    why = _QUOTED_LINE.sub("", why.strip()).strip()
    if (m := _NO_FIELD.match(why)) is not None:
        message, field = m.groups()
        return f"unknown field {field!r} in {message}" + _close(field, _fields(message))
    if (m := _NO_VALUE.match(why)) is not None:
        enum, value = m.groups()
        return f"{value!r} is not a value of {enum}" + _close(value, _values(enum))
    if (m := _TWICE.match(why)) is not None:
        message, field = m.groups()
        return f"field {field!r} is given twice in {message} (it takes one value)"
    if (m := _EXPECTED.match(why)) is not None:
        return f"expected {m[1]!r} but found {found_at(text, line, col)}"
    if "found" not in why and "got" not in why and ":" not in why:
        return f"{why.rstrip('.')} (found {found_at(text, line, col)})"
    return why
