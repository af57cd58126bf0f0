"""Credentials in URLs: never printed, logged or written; put back only where a URL is used.

Users give private indexes, channels and registries as ``https://user:TOKEN@host/...``
(and anaconda.org tokens as ``.../t/TOKEN/...``). tritonpack uses such a URL as given, but
everything it shows (error lines, ``--json``, progress, logs, ``tritonpack config``,
``cache info``) goes through :func:`redact`, and everything it writes (the lock, the SBOM)
holds the URL :func:`strip` made: no credentials at all, like ``uv.lock``, so a lock stays
the same whoever made it. Where the lock's URL is used again (a build), :func:`restore`
takes the credentials from the URL the user gave for the same host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# scheme://USERINFO@ : the userinfo runs to the last "@" before the host's end; a "'" is
# one of its characters (RFC 3986 sub-delims: a password "ab'cd" showed "ab" otherwise)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s\"]*@)")
_CONDA_TOKEN = re.compile(r"(/t/)([A-Za-z0-9._\-]{6,})(/)")
# a query's or fragment's value named as a secret, under any prefix (private_token,
# X-Goog-Signature, X-Amz-Credential, client_secret); the value ends at a backslash too
# (in --json text a newline after it is a backslash and "n": the next line's word was masked)
_QUERY = re.compile(r"(?i)([?&#;](?:[a-z0-9_.\-]*(?:token|password|passwd|secret|signature|"
                    r"credential|api[_-]?key)|auth|sig|key)=)([^&#;\s'\"\\]+)")


def redact(text: str) -> str:
    """``text`` with every URL's credentials replaced by ``***`` (user, password, an
    anaconda.org ``/t/TOKEN/`` and token-like query values); the rest stays readable."""
    if "://" not in text and "/t/" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _CONDA_TOKEN.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)


def has_credentials(url: str) -> bool:
    return redact(url) != url


def strip(url: str) -> str:
    """``url`` without its userinfo or anaconda.org token (what a lock or an SBOM records)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if not parts.scheme or not parts.netloc:
        return redact(url)
    netloc = parts.netloc.rpartition("@")[2]
    path = _CONDA_TOKEN.sub(lambda m: "/", parts.path)
    return redact(urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment)))


def restore(url: str, given: Iterable[str]) -> str:
    """``url`` (as a lock holds it) with the credentials of the first URL the user gave for
    the same scheme, host and port; unchanged when none carries any."""
    try:
        parts = urlsplit(url)
        for candidate in given:
            have = urlsplit(candidate)
            if not has_credentials(candidate) or (have.scheme, have.netloc.rpartition("@")[2]) != (
                    parts.scheme, parts.netloc.rpartition("@")[2]):
                continue
            token = _CONDA_TOKEN.search(have.path)
            path = parts.path
            if token and not _CONDA_TOKEN.search(path) and path.startswith("/"):
                path = f"/t/{token.group(2)}{path}"
            return urlunsplit((parts.scheme, have.netloc, path, parts.query, parts.fragment))
    except ValueError:
        return url
    return url
