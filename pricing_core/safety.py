"""Run modes and secrets hygiene: the production start check, the sign-in configuration
(the `[auth]` section of `.streamlit/secrets.toml`), and redaction of secrets.

`PRICING_ENV=production` refuses to start (the dashboard, the CLI and the REST API
call `ensure_safe_to_start`) when any of these holds, each with its own message:

- sign-in is not configured (no usable `[auth]` section);
- the cookie secret appears in the project's files (an example, the README) or has
  fewer than 256 bits of estimated randomness;
- demo mode is on (`PRICING_DEMO=on`);
- the database is the default SQLite file, however its path is written;
- Stripe is configured (`PRICING_STRIPE_SECRET_KEY`) without a webhook secret.

This module never imports streamlit: the `[auth]` section is passed in (the app reads
`st.secrets`) or read from the same secrets files Streamlit reads.
"""

from __future__ import annotations

import logging
import math
import os
import re
import string
import tomllib
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pricing_core.config import DEFAULT_DATA_DIR, PROJECT_ROOT, Settings, get_settings
from pricing_core.domain.errors import ConfigurationError

# Keys a provider needs (either directly under [auth] or in an [auth.<name>] section).
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
# Keys of the [auth] section itself.
AUTH_KEYS = ("redirect_uri", "cookie_secret")
MIN_COOKIE_SECRET_BITS = 256  # 32 random bytes
MIN_BITS_PER_CHAR = 3.0  # below it a secret repeats a few characters: not random
# Where a published secret could come from: every text file of the project, except the
# real secrets files and what is not the project's own.
_PUBLISHED_SUFFIXES = {".md", ".example", ".toml", ".py", ".txt", ".cfg", ".ini", ".yaml", ".yml"}
_NOT_PUBLISHED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "data"}


class Unsafe(StrEnum):
    """Why production refuses to start."""

    NO_SIGN_IN = "no_sign_in"
    WEAK_COOKIE_SECRET = "weak_cookie_secret"
    PUBLISHED_COOKIE_SECRET = "published_cookie_secret"
    DEMO_ON = "demo_on"
    DEFAULT_DATABASE = "default_database"
    STRIPE_WITHOUT_WEBHOOK_SECRET = "stripe_without_webhook_secret"
    EMAIL_WITHOUT_NOTIFICATION_SECRET = "email_without_notification_secret"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the configuration is unsafe, with the message that names the fix."""

    kind: Unsafe
    message: str


class UnsafeConfiguration(ConfigurationError):
    """Production refused to start. `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p.message}" for p in self.problems)
        super().__init__(f"PRICING_ENV=production refuses to start:\n{lines}")


@dataclass(frozen=True, slots=True)
class SignInConfig:
    """What the `[auth]` section provides. `missing` names absent keys (empty when
    sign-in is configured); `providers` are the provider names usable with
    `st.login(name)` (`None` stands for the unnamed default provider)."""

    missing: tuple[str, ...]
    providers: tuple[str | None, ...]
    cookie_secret: SecretStr | None

    @property
    def configured(self) -> bool:
        return not self.missing and bool(self.providers)


def sign_in_config(section: Mapping[str, Any] | None) -> SignInConfig:
    """Inspect an `[auth]` section (a mapping, as in `st.secrets["auth"]` or a TOML
    table) without keeping any secret value.

    A provider is either the section itself (`client_id`, `client_secret`,
    `server_metadata_url` directly under `[auth]`) or a sub-table `[auth.<name>]`.
    """
    section = section or {}
    missing = [f"auth.{k}" for k in AUTH_KEYS if not _present(section.get(k))]
    providers: list[str | None] = []
    if any(k in section for k in PROVIDER_KEYS):
        absent = [f"auth.{k}" for k in PROVIDER_KEYS if not _present(section.get(k))]
        missing += absent
        if not absent:
            providers.append(None)
    for name, value in section.items():
        if isinstance(value, Mapping) and any(k in value for k in PROVIDER_KEYS):
            absent = [f"auth.{name}.{k}" for k in PROVIDER_KEYS if not _present(value.get(k))]
            missing += absent
            if not absent:
                providers.append(str(name))
    if not providers and len(missing) == len([k for k in AUTH_KEYS if f"auth.{k}" in missing]):
        missing += [f"auth.{k}" for k in PROVIDER_KEYS]  # no provider at all
    cookie = section.get("cookie_secret")
    return SignInConfig(
        tuple(missing), tuple(providers), SecretStr(cookie) if isinstance(cookie, str) else None
    )


def estimated_entropy_bits(secret: str) -> float:  # bits of randomness, not money
    """A cautious estimate of a secret's randomness in bits: its length times the bits
    per character of the smallest alphabet it fits (lower-case hex 16, else the sum of
    the classes it uses: digits 10, lower 26, upper 26, anything else 33). A secret
    whose characters' empirical Shannon entropy is under MIN_BITS_PER_CHAR (such as
    "a" * 64 or "ab" * 32) counts as 0. `secrets.token_hex(32)` gives 256 and
    `secrets.token_urlsafe(32)` about 280."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    shannon = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    if shannon < MIN_BITS_PER_CHAR:
        return 0.0
    if all(c in string.hexdigits for c in secret) and secret == secret.lower():
        return len(secret) * 4.0
    classes = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
    alphabet = sum(len(chars) for chars in classes if any(c in chars for c in secret))
    if any(not (c.isascii() and c.isalnum()) for c in secret):
        alphabet += 33
    return len(secret) * math.log2(alphabet)


def published_in_project(secret: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The first project file that contains `secret` (an example, the README, a
    test), or None. Real secrets files (`secrets.toml`, `.env`) are not searched."""
    if not secret:
        return None
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_PUBLISHED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix not in _PUBLISHED_SUFFIXES or name == "secrets.toml":
                continue
            try:
                if secret in path.read_text(encoding="utf-8", errors="ignore"):
                    return path
            except OSError:
                continue
    return None


def _set(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


def _present(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def secrets_files(script_dir: Path = PROJECT_ROOT) -> list[Path]:
    """The secrets files Streamlit reads, first to last (later ones win): the user's
    `~/.streamlit/secrets.toml`, the working directory's, the app script's."""
    paths = [
        Path.home() / ".streamlit" / "secrets.toml",
        Path.cwd() / ".streamlit" / "secrets.toml",
        script_dir / ".streamlit" / "secrets.toml",
    ]
    unique: list[Path] = []
    for p in paths:
        if p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def load_auth_section(paths: Iterable[Path | str] | None = None) -> dict[str, Any]:
    """The merged `[auth]` table of the secrets files (top-level keys of later files
    win, as in Streamlit). Missing files are skipped.

    Raises: ConfigurationError when a file is not valid TOML (the message names the
    file, never its content).
    """
    merged: dict[str, Any] = {}
    for path in map(Path, paths if paths is not None else secrets_files()):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"secrets file {str(path)!r} is not valid TOML: {exc}"
            ) from None
        auth = data.get("auth")
        if isinstance(auth, dict):
            merged.update(auth)
    return merged


def production_problems(
    settings: Settings, auth_section: Mapping[str, Any] | None
) -> list[Problem]:
    """Every reason `settings` + `auth_section` are unsafe for production (empty outside
    production). Messages name the setting or key to fix, never a secret's value."""
    if settings.env != "production":
        return []
    problems: list[Problem] = []
    sign_in = sign_in_config(auth_section)
    if not sign_in.configured:
        problems.append(
            Problem(
                Unsafe.NO_SIGN_IN,
                "sign-in is not configured: .streamlit/secrets.toml needs an [auth] section "
                f"(missing: {', '.join(sign_in.missing)}; see .streamlit/secrets.toml.example)",
            )
        )
    elif sign_in.cookie_secret is not None:
        problems += _cookie_secret_problems(sign_in.cookie_secret.get_secret_value())
    if settings.demo == "on":
        problems.append(
            Problem(
                Unsafe.DEMO_ON,
                "demo mode is on (PRICING_DEMO=on): anyone could view any account; "
                "set PRICING_DEMO=off",
            )
        )
    if is_default_database(settings.database_url):
        problems.append(
            Problem(
                Unsafe.DEFAULT_DATABASE,
                "the database is the default SQLite file (data/pricing.db): set "
                "PRICING_DATABASE_URL to the production database",
            )
        )
    if _set(settings.stripe_secret_key) and not _set(settings.stripe_webhook_secret):
        problems.append(
            Problem(
                Unsafe.STRIPE_WITHOUT_WEBHOOK_SECRET,
                "Stripe is configured (PRICING_STRIPE_SECRET_KEY) without a webhook secret: "
                "set PRICING_STRIPE_WEBHOOK_SECRET, or payments could be forged",
            )
        )
    if _set(settings.smtp_url) and not _set(settings.notification_secret):
        problems.append(
            Problem(
                Unsafe.EMAIL_WITHOUT_NOTIFICATION_SECRET,
                "email is configured (PRICING_SMTP_URL) without PRICING_NOTIFICATION_SECRET: "
                "set it, or the emails cannot carry their one-click unsubscribe link",
            )
        )
    return problems


def _cookie_secret_problems(secret: str) -> list[Problem]:
    """Why `secret` cannot sign production sessions: published, or too guessable."""
    fix = '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(48))"`)'
    published = published_in_project(secret)
    if published is not None:
        where = published.relative_to(PROJECT_ROOT)
        return [
            Problem(
                Unsafe.PUBLISHED_COOKIE_SECRET,
                f"auth.cookie_secret appears in the project's own files ({where}), so anyone "
                f"can sign a session cookie: generate a new one {fix}",
            )
        ]
    bits = estimated_entropy_bits(secret)
    if bits < MIN_COOKIE_SECRET_BITS:
        return [
            Problem(
                Unsafe.WEAK_COOKIE_SECRET,
                f"auth.cookie_secret is too guessable (about {bits:.0f} bits of randomness; "
                f"at least {MIN_COOKIE_SECRET_BITS} needed, 32 random bytes) {fix}",
            )
        ]
    return []


def is_default_database(url: str) -> bool:
    """True when `url` is a SQLite URL whose file is the default `data/pricing.db`,
    however the path is written (relative to the working directory, through `..`,
    or a symbolic link)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return False
    return Path(parsed.database).resolve() == (DEFAULT_DATA_DIR / "pricing.db").resolve()


def ensure_safe_to_start(settings: Settings, auth_section: Mapping[str, Any] | None) -> None:
    """Raises: UnsafeConfiguration naming every problem (production only)."""
    problems = production_problems(settings, auth_section)
    if problems:
        raise UnsafeConfiguration(problems)


# ---------------------------------------------------------------- redaction

REDACTED = "***"


def redact_url(url: str) -> str:
    """A database URL with its password replaced by `***` (for logs and pages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]*):[^@/]*@", rf"//\1:{REDACTED}@", url)


def secret_values(settings: Settings, auth_section: Mapping[str, Any] | None = None) -> list[str]:
    """Every configured secret value (Stripe keys, webhook secret, cookie and client
    secrets, the database password), for redaction and for the tests that grep for
    leaks. Short values (< 8 chars) are left out: they would match everywhere."""
    values: list[str] = []
    for secret in (
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        settings.smtp_url,
        settings.notification_secret,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    try:
        password = make_url(settings.database_url).password
    except ArgumentError:
        password = None
    if password:
        values.append(str(password))
    section = auth_section or {}
    for key in ("cookie_secret", "client_secret"):
        if isinstance(section.get(key), str):
            values.append(section[key])
    for value in section.values():
        if isinstance(value, Mapping) and isinstance(value.get("client_secret"), str):
            values.append(value["client_secret"])
    return [v for v in dict.fromkeys(values) if len(v) >= 8]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


_base_record_factory = logging.getLogRecordFactory()
_redacted: tuple[str, ...] = ()


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Redact `secrets` from every log record of this process (all loggers and
    handlers: the message, its arguments and a formatted traceback). Calling again
    replaces the list."""
    global _redacted
    _redacted = tuple(s for s in secrets if s)
    logging.setLogRecordFactory(_redacting_factory)


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    if not _redacted:
        return record
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed format string: keep the raw parts
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message, _redacted), None
    if record.exc_info and record.exc_info[1] is not None:
        formatted = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = redact(formatted.rstrip("\n"), _redacted)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, _redacted)
    return record


def demo_enabled(settings: Settings | None = None) -> bool:
    """`Settings.demo_mode` with sign-in as configured in the secrets files Streamlit
    reads (the dashboard decides from `st.secrets` instead, see `pages/_session.py`)."""
    settings = settings or get_settings()
    return settings.demo_mode(sign_in_configured=sign_in_config(load_auth_section()).configured)
