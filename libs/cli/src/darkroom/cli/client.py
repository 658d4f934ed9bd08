"""The gateway's HTTP API, as the CLI uses it: one client, errors as one-line messages."""

from __future__ import annotations

import os
from typing import Any

import httpx


class GatewayError(Exception):
    """The gateway refused (its code and sentence) or could not be reached."""


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
            try:
                body = response.json()["error"]
                raise GatewayError(f"{body['code']}: {body['message']}")
            except (ValueError, KeyError, TypeError):
                raise GatewayError(f"HTTP {response.status_code}: {response.text[:200]}") from None
        return response.json() if response.content else None
