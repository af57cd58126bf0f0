"""A small KServe-v2 HTTP client over urllib: readiness, explicit load, inference."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(self, base_url: str, timeout: float = 60.0):
        if not base_url.startswith("http://127.0.0.1"):
            raise ValueError("the verification client only talks to a server on loopback")
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json"})
        try:
            # loopback only (checked in __init__)
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("error", raw.decode())
            except ValueError:
                message = raw.decode(errors="replace")
            raise HttpError(exc.code, str(message)) from exc

    def live(self) -> bool:
        try:
            return self._request("GET", "/v2/health/live")[0] == 200
        except (HttpError, OSError):
            return False

    def model_ready(self, name: str) -> bool:
        try:
            return self._request("GET", f"/v2/models/{_quoted(name)}/ready")[0] == 200
        except (HttpError, OSError):
            return False

    def load(self, name: str) -> None:
        self._request("POST", f"/v2/repository/models/{_quoted(name)}/load", {})

    def config(self, name: str) -> dict[str, Any]:
        """The loaded model's config as the server completed it (auto_complete_config)."""
        return dict(self._request("GET", f"/v2/models/{_quoted(name)}/config")[1])

    def infer(self, name: str, inputs: list[dict[str, Any]],
              outputs: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"inputs": inputs}
        if outputs:
            body["outputs"] = [{"name": n} for n in outputs]
        result = self._request("POST", f"/v2/models/{_quoted(name)}/infer", body)[1]
        return dict(result)

    def wait_live(self, deadline: float, alive: Any) -> bool:
        while time.monotonic() < deadline:
            if self.live():
                return True
            if not alive():
                return False
            time.sleep(0.1)
        return False


def _quoted(name: str) -> str:
    """A model name as one URL path segment (a space, a slash or '?' in a directory name)."""
    return urllib.parse.quote(name, safe="")
