"""What notify says, before any socket: ids, header-safe text, signed webhook requests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from darkroom.notify.messages import (
    UnsafeHeader,
    ascii_address,
    email,
    message_id,
    one_line,
    webhook,
    webhook_id,
)

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PAYLOAD = {
    "view_name": "North facade",
    "source": "drone",
    "uploaded": 3,
    "skipped": 0,
    "failed": [],
}


def test_the_message_id_is_the_same_for_the_same_event_and_recipient_only() -> None:
    one = message_id("darkroom.session.submitted.v1:s1", "ana@example.org", "example.org")
    assert one == message_id("darkroom.session.submitted.v1:s1", "ana@example.org", "example.org")
    assert one != message_id("darkroom.session.submitted.v1:s1", "ops@example.org", "example.org")
    assert one != message_id("darkroom.session.processed.v1:s1", "ana@example.org", "example.org")
    assert one.startswith("<") and one.endswith("@example.org>")
    hook = webhook_id("darkroom.session.submitted.v1:s1", "https://hooks.example.org/x")
    assert hook == webhook_id("darkroom.session.submitted.v1:s1", "https://hooks.example.org/x")
    assert hook.startswith("msg_") and hook != webhook_id("other:s1", "https://hooks.example.org/x")


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("Roof\r\nBcc: x@example.org", "Roof Bcc: x@example.org"),
        ("a\x00b\tc\u2028d", "a b c d"),
        ("Roof\x85Bcc: x@example.org", "Roof Bcc: x@example.org"),  # NEL ends a line too
        ("  plain  ", "plain"),
        ("Site=?utf-8?q?=0D=0A?=", "Site= ?utf-8?q?=0D=0A?="),  # an encoded-word, broken
    ],
)
def test_header_text_is_one_line(text: str, safe: str) -> None:
    assert one_line(text) == safe


def _email(payload: dict[str, object], recipient: str = "ana@example.org") -> EmailMessage:
    return email(
        "upload_succeeded",
        payload,
        sender="darkroom@example.org",
        recipient=recipient,
        message_id="<x@example.org>",
        failed_listed=50,
        now=NOW,
    )


def test_an_email_has_both_parts_and_no_line_break_in_its_subject() -> None:
    message = _email({**PAYLOAD, "view_name": "A\nB\x85C"})
    assert message["Subject"] == "Upload received: A B C"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None


def test_an_encoded_word_in_a_name_cannot_inject_a_header() -> None:
    """The e-mail package decodes an RFC 2047 encoded-word in a subject: one hiding CR LF
    would go out as a header line of its own once the sender flattens the message."""
    name = "Site =?utf-8?q?=0D=0AReply-To:_attacker@evil.example?="
    sent = flatten_message(_email({**PAYLOAD, "view_name": name}))  # as aiosmtplib.send does
    head = sent.split(b"\r\n\r\n", 1)[0]
    assert not any(line.startswith(b"Reply-To:") for line in head.split(b"\r\n"))
    received = message_from_bytes(sent, policy=policy.default)
    assert received["Reply-To"] is None
    subject = str(received["Subject"])
    assert "\r" not in subject and "\n" not in subject
    assert subject.strip() == (  # folded after "Subject:", so read with a leading space
        "Upload received: Site = ?utf-8?q?=0D=0AReply-To:_attacker@evil.example?="
    )


def test_a_header_that_decodes_to_a_control_character_is_refused() -> None:
    """An address may spell an encoded-word too (``=`` and ``?`` are allowed in its local
    part): what a header decodes to is checked, and a control character is never written."""
    with pytest.raises(UnsafeHeader, match="To header"):
        _email(PAYLOAD, recipient="=?utf-8?q?=0B?=@example.org")


@pytest.mark.parametrize(
    "secret", ["whsec_" + base64.b64encode(b"0123456789abcdef0123").decode(), "a raw secret of 20+"]
)
def test_a_webhook_verifies_with_a_standard_webhooks_library(secret: str) -> None:
    body, headers = webhook(
        "upload_succeeded", PAYLOAD, secret=secret, webhook_id="msg_1", occurred=NOW, now=NOW
    )
    key = secret if secret.startswith("whsec_") else base64.b64encode(secret.encode()).decode()
    receiver = Webhook(key)
    with pytest.raises(WebhookVerificationError):  # too old: replay protection holds
        receiver.verify(body, headers)
    fresh_body, fresh = webhook(
        "upload_succeeded",
        PAYLOAD,
        secret=secret,
        webhook_id="msg_1",
        occurred=NOW,
        now=datetime.now(UTC),
    )
    assert fresh_body == body  # every attempt sends the same body; only its signature is new
    assert receiver.verify(fresh_body, fresh)["data"] == PAYLOAD
    with pytest.raises(WebhookVerificationError):  # a changed body does not verify
        receiver.verify(fresh_body.replace(b"drone", b"plane"), fresh)


def test_an_address_with_a_non_ascii_domain_goes_out_in_ascii() -> None:
    assert ascii_address("ana@ex\u00e4mple.org") == "ana@xn--exmple-cua.org"
    assert ascii_address("ana@example.org") == "ana@example.org"
    message = _email(PAYLOAD, recipient="ana@b\u00fccher.example")
    assert message["To"] == "ana@xn--bcher-kva.example"


def test_an_email_counts_every_failure_the_event_counted_not_only_those_it_names() -> None:
    """A session event names the first 100 failures and counts them all."""
    listed = [{"relative_path": f"f{n}.jpg", "reason": "Not a JPEG."} for n in range(100)]
    message = email(
        "upload_failures",
        {**PAYLOAD, "failed": listed, "failed_count": 1500},
        sender="darkroom@example.org",
        recipient="ana@example.org",
        message_id="<x@example.org>",
        failed_listed=50,
        now=NOW,
    )
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Failed: 1500" in text and "... and 1450 more." in text
    assert "f49.jpg" in text and "f50.jpg" not in text


def test_processing_complete_counts_the_tags_and_persons_its_event_does_not_name() -> None:
    processed = {
        **PAYLOAD,
        "processed": 1500,
        "duplicates": 0,
        "tags": ["Site", "2024"],
        "tags_count": 4500,
        "persons": ["Ada"],
        "persons_count": 1,
        "countries": [],
    }
    message = email(
        "processing_complete",
        processed,
        sender="darkroom@example.org",
        recipient="ana@example.org",
        message_id="<x@example.org>",
        failed_listed=50,
        now=NOW,
    )
    for part, persons in [("plain", "Persons: Ada\n"), ("html", "<td>Ada</td>")]:
        text = message.get_body((part,)).get_content()  # type: ignore[union-attr]
        assert "Site, 2024, and 4498 more" in text
        assert persons in text  # all named: no "more"
