"""A local SMTP server: every message it receives is stored as an .eml file under var/mail/.

Any mail reader opens the files; tests read them. One log line per message. Run by
``deploy/local/stack start`` as ``uv run python deploy/local/smtp_sink.py`` (127.0.0.1:2525).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("smtp_sink")

MAIL = Path(__file__).resolve().parents[2] / "var" / "mail"


class MailDrop:
    """The aiosmtpd handler: accepts every message and files it in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        path = await asyncio.to_thread(self.store, envelope)
        log.info(
            "%s: from %s to %s, %d bytes",
            path.name,
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            path.stat().st_size,
        )
        return "250 Message accepted for delivery"

    def store(self, envelope: Envelope) -> Path:
        """Writes the message under a fresh name; the rename means no reader sees half a file.

        The envelope (which a Bcc recipient is only in) goes first, as trace headers.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex}.eml"
        trace = (
            f"X-Envelope-From: <{envelope.mail_from}>\r\n"
            f"X-Envelope-To: {', '.join(f'<{rcpt}>' for rcpt in envelope.rcpt_tos)}\r\n"
        )
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(trace.encode() + (envelope.original_content or b""))
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


async def serve(host: str, port: int, folder: Path) -> None:
    drop = MailDrop(folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(drop, hostname="localhost", ident="Darkroom SMTP sink"), host, port
    )
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    log.info("listening on %s:%d; messages go to %s", host, port, folder)
    await stopped.wait()
    server.close()
    await server.wait_closed()
    log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--mail", type=Path, default=MAIL, help="folder of the .eml files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    args.mail.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, args.mail))


if __name__ == "__main__":
    main()
