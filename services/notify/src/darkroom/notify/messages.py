"""What a notification says: e-mails from templates, signed webhook requests. Pure.

Nothing a user typed reaches a header raw: view names and file names are made single-line
(control characters become spaces, and an RFC 2047 encoded-word's ``=?`` is broken, since
the e-mail package would decode one back into a line break) before they go into a subject,
a header that still holds a control character is refused, and the HTML part is autoescaped
by Jinja2. The ``Message-ID`` and the ``webhook-id`` are derived from what the
notification is about and its recipient, so every attempt, and any repeat after a crash,
carries the same one and a receiver can drop the repeat.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from standardwebhooks import Webhook

SUBJECTS = {
    "upload_succeeded": "Upload received: {view_name}",
    "upload_failures": "Upload had failures: {view_name}",
    "processing_complete": "Processing complete: {view_name}",
    "digest": "Darkroom: {count} updates on your uploads",
}
# C0 and C1 controls (NEL, U+0085, ends a header line too) and Unicode's line separators
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MAX_SUBJECT = 200

_templates = Environment(
    loader=PackageLoader("darkroom.notify", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def message_id(subject_key: str, recipient: str, domain: str) -> str:
    """An e-mail's ``Message-ID``: the same for the same news to the same recipient."""
    return f"<{_digest(subject_key, recipient)}@{domain}>"


def webhook_id(subject_key: str, url: str) -> str:
    """A webhook's ``webhook-id``, derived as the ``Message-ID`` is."""
    return f"msg_{_digest(subject_key, url)}"


def _digest(subject_key: str, recipient: str) -> str:
    return hashlib.sha256(f"{subject_key}\n{recipient}".encode()).hexdigest()[:40]


def mailbox(address: str) -> str:
    """The mailbox an address names: mail systems take Ana@ and ana@ as one (the gateway's
    validation lowers only the domain). Lowered, not case-folded, which would make straße@
    and strasse@ one too. (SQL spells it ``lower(recipient)``.)"""
    return address.lower()


class UnsafeHeader(ValueError):
    """A header that would hold a control character: such a message is never sent."""


def one_line(text: str) -> str:
    """Text safe for a header: control characters (CR, LF, tabs...) become one space, and
    ``=?`` becomes ``= ?``, so no encoded-word (``=?utf-8?q?=0D=0A...?=``) is left for the
    e-mail package to decode into the characters it hides."""
    return CONTROL.sub(" ", text).strip().replace("=?", "= ?")[:MAX_SUBJECT]


def ascii_address(address: str) -> str:
    """The address with its domain in ASCII (IDNA: ana@exämple.org is ana@xn--exmple-cua.org),
    so a relay without SMTPUTF8 takes it; a non-ASCII local part still needs SMTPUTF8."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def context(payload: dict[str, Any], failed_listed: int) -> dict[str, Any]:
    """The event's values for a template, with how many of each list it does not name."""
    failed = payload.get("failed", [])
    listed, count = failed[:failed_listed], payload.get("failed_count", len(failed))
    values = {**payload, "failed": listed, "failed_count": count, "more": count - len(listed)}
    for name in ("tags", "persons"):  # session.processed.v1 names the first NAMES_LISTED
        named = payload.get(name, [])
        values[f"{name}_more"] = max(0, payload.get(f"{name}_count", 0) - len(named))
    return values


def email(
    template: str,
    payload: dict[str, Any],
    *,
    sender: str,
    recipient: str,
    message_id: str,
    failed_listed: int,
    now: datetime,
) -> EmailMessage:
    if template == "digest":
        entries = [context(entry, failed_listed) for entry in payload["sessions"]]
        values: dict[str, Any] = {"sessions": entries, "titles": SUBJECTS}
        subject = SUBJECTS["digest"].format(count=len(entries))
    else:
        values = context(payload, failed_listed)
        subject = SUBJECTS[template].format(view_name=one_line(payload["view_name"]))
    message = EmailMessage()
    message["From"] = formataddr(("Darkroom", sender))
    message["To"] = ascii_address(recipient)
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(now)
    # Headers are kept decoded, as the generator will write them: a control character here
    # would be written raw and start a header of its own, whatever let it through.
    for name, value in message.items():
        if CONTROL.search(value):
            raise UnsafeHeader(f"the {name} header holds a control character")
    message.set_content(_templates.get_template(f"{template}.txt").render(values))
    message.add_alternative(
        _templates.get_template(f"{template}.html").render(values), subtype="html"
    )
    return message


def webhook(
    template: str,
    payload: dict[str, Any],
    *,
    secret: str,
    webhook_id: str,
    occurred: datetime,
    now: datetime,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a signed webhook request (Standard Webhooks). The body is the
    same at every attempt (``occurred``: when the news was owed); the signature's timestamp is
    the attempt's."""
    body = json.dumps(
        {"type": template, "timestamp": occurred.isoformat(), "data": payload},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    signer = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    signature = signer.sign(webhook_id, now, body)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body.encode(), headers
