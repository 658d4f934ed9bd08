"""The gateway's HTTP edges, before any database: a browser uploader on another origin (Uppy,
tus-js-client) is let in only when its origin is allowed, and may then read the tus headers it
needs; the router's own refusals come in the API's error shape; a body too large for its
address is cut off as it streams in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from cryptography.fernet import Fernet
from pydantic import SecretStr

from darkroom.common.runtime import MAX_BODY_BYTES
from darkroom.common.settings import IngestSettings
from darkroom.ingest.app import create_runtime

UPPY = "https://uploads.example.org"
PREFLIGHT = {
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization,content-type,tus-resumable,upload-offset",
}


def _client(origins: str) -> httpx.AsyncClient:
    settings = IngestSettings(
        cors_origins=origins, sealing_keys=SecretStr(Fernet.generate_key().decode())
    )
    app = create_runtime(settings).app  # not started: these answers need no database
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_an_allowed_origin_may_upload_and_read_the_tus_headers() -> None:
    async with _client(f"{UPPY}, https://other.example.org") as client:
        preflight = await client.options("/v1/tus/x", headers={"Origin": UPPY} | PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == UPPY
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower().split(",")
        assert {"authorization", "tus-resumable", "upload-offset"} <= {h.strip() for h in allowed}
        answer = await client.options("/v1/tus", headers={"Origin": UPPY})
        assert answer.headers["Tus-Version"] == "1.0.0"
        exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Location", "Upload-Offset", "Upload-Length", "Tus-Resumable"} <= exposed
        assert "Access-Control-Allow-Credentials" not in answer.headers


async def test_another_origin_is_not_let_in() -> None:
    async with _client(UPPY) as client:
        preflight = await client.options(
            "/v1/tus/x", headers={"Origin": "https://evil.example.org"} | PREFLIGHT
        )
        assert preflight.status_code == 400
        assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_no_origin_is_let_in_unless_configured() -> None:
    async with _client("") as client:
        answer = await client.options("/v1/tus", headers={"Origin": UPPY})
        assert "Access-Control-Allow-Origin" not in answer.headers


async def test_an_unknown_address_or_method_is_answered_in_the_apis_shape() -> None:
    async with _client("") as client:
        missing = await client.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong = await client.put("/v1/tus")
        assert wrong.status_code == 405
        assert wrong.json()["error"] == {
            "code": "method_not_allowed",
            "message": "PUT is not taken here.",
        }


async def test_a_json_body_over_the_cap_is_refused_before_it_is_read_whole() -> None:
    batch = "/v1/sessions/00000000-0000-0000-0000-000000000001/files"
    too_large = b'{"files": [' + b" " * MAX_BODY_BYTES + b"]}"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(too_large), 64 * 1024):
            yield too_large[start : start + 64 * 1024]

    async with _client("") as client:
        declared = await client.post(batch, content=too_large)
        streamed = await client.post(batch, content=chunked())
        within = await client.post(batch, content=b'{"files": []}')
    # Refused from its Content-Length before a byte is read: Starlette's own answer.
    assert (declared.status_code, declared.text) == (413, "Content Too Large")
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "body_too_large"
    assert f"at most {MAX_BODY_BYTES:,} bytes" in streamed.json()["error"]["message"]
    assert within.status_code == 401  # read whole, then refused for its missing key
