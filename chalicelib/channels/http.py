"""A minimal outbound HTTP client (stdlib urllib) behind a Protocol, and the error senders raise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


class SendError(Exception):
    """Delivery failed. `retryable` tells the outbox whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class HttpResponse:
    """Status, headers and body of an HTTP response."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class HttpClient(Protocol):
    """What senders need from HTTP: one request, one response, never raising for a status code."""

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse: ...


class UrllibHttpClient:
    """HttpClient over urllib with a timeout; network failures become retryable SendErrors."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        # urllib.request pulls in http.client, email and ssl: imported on the first send, not with the app.
        import urllib.error
        import urllib.request

        if not url.startswith(("http://", "https://")):
            raise SendError(f"refusing non-HTTP URL {url!r}", retryable=False)
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return HttpResponse(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return HttpResponse(exc.code, exc.read(), dict(exc.headers or {}))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SendError(f"{method} {url}: {exc}", retryable=True) from exc
