"""The gateway's HTTP API, as the CLI uses it: one client, errors as one-line messages."""

from __future__ import annotations

import os
from typing import Any

import httpx


class GatewayError(Exception):
    """The gateway refused (its code and sentence) or could not be reached (no status)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth trying again: unreachable, overloaded or failing, not a refusal."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class Gateway:
    def __init__(
        self, url: str | None = None, key: str | None = None, timeout: float = 120
    ) -> None:
        url = url or os.environ.get("DARKROOM_URL")
        key = key or os.environ.get("DARKROOM_API_KEY")
        if not url or not key:
            raise GatewayError(
                "Set DARKROOM_URL and DARKROOM_API_KEY (make up writes var/dev.env)."
            )
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise GatewayError(f"The gateway cannot be reached: {error}.") from error
        if response.status_code >= 400:
            status = response.status_code
            try:
                body = response.json()["error"]
                code, message = str(body["code"]), str(body["message"])
            except (ValueError, KeyError, TypeError):
                raise GatewayError(f"HTTP {status}: {response.text[:200]}", status) from None
            raise GatewayError(f"{code}: {message}", status, code)
        return response.json() if response.content else None
