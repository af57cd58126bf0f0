"""-v/-vv log lines go through the credentials filter whole (docs/security.md: never printed)."""

from __future__ import annotations

import io
import logging

from packer.commands.base import _Redacting

URL = "https://alice:s3cr3t@pypi.example.com/simple/?token=abc123"


def test_a_logged_traceback_has_its_credentials_masked() -> None:
    """A library's ``log.debug(..., exc_info=True)`` (shown at -vv) quotes the URL in its
    exception: the traceback was printed as raised, the password in it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_Redacting())
    log = logging.getLogger("tests.log_redact")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        try:
            raise ConnectionError(f"cannot reach {URL}")
        except ConnectionError:
            log.debug("fetching %s failed", URL, exc_info=True, stack_info=True)
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "fetching https://***@pypi.example.com/simple/?token=*** failed" in text
    assert "ConnectionError: cannot reach https://***@pypi.example.com/simple/?token=***" in text
    assert "Stack (most recent call last)" in text
    assert "s3cr3t" not in text and "abc123" not in text
