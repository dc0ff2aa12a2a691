"""Sending email over SMTP (`PRICING_SMTP_URL`, `PRICING_EMAIL_FROM`), with the
standard library's `smtplib`.

`smtp://user:pass@host:587?starttls=true` (STARTTLS), `smtps://host:465` (TLS from
the start), `smtp://127.0.0.1:8025` (plain, for a local relay or the tests).
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from pricing_core.config import get_settings
from pricing_core.domain.errors import ConfigurationError

TIMEOUT_SECONDS = 20


@dataclass(frozen=True, slots=True)
class Email:
    """One message: `to` addresses, a subject, and text and HTML bodies."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str


class SendFailed(Exception):
    """The SMTP server refused or could not be reached (the message was not sent)."""


def _server() -> tuple[str, str, int, bool, str | None, str | None]:
    url = get_settings().smtp_url
    if url is None:
        raise ConfigurationError("email is not configured: set PRICING_SMTP_URL")
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("PRICING_SMTP_URL must look like smtp://user:pass@host:587")
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() == "true"
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.scheme, parts.hostname, port, starttls, user, password


def send(email: Email) -> None:
    """Send one message. Raises: ConfigurationError (no SMTP URL), SendFailed."""
    scheme, host, port, starttls, user, password = _server()
    message = EmailMessage()
    message["From"] = get_settings().email_from
    message["To"] = ", ".join(email.to)
    message["Subject"] = email.subject
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    client = smtplib.SMTP_SSL if scheme == "smtps" else smtplib.SMTP
    try:
        with client(host, port, timeout=TIMEOUT_SECONDS) as smtp:
            if starttls:
                smtp.starttls()
            if user and password:
                smtp.login(user, password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}"[:400]) from None
