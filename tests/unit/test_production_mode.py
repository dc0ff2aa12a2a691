"""PRICING_ENV=production refuses unsafe configurations, each with its own message."""

from __future__ import annotations

import secrets

import pytest
from pydantic import SecretStr

from pricing_core.config import PROJECT_ROOT, Settings
from pricing_core.safety import (
    Unsafe,
    UnsafeConfiguration,
    ensure_safe_to_start,
    estimated_entropy_bits,
    load_auth_section,
    production_problems,
    redact,
    redact_url,
    secret_values,
    sign_in_config,
)

COOKIE = secrets.token_urlsafe(48)  # made now: a secret written in a file is published
EXAMPLE = PROJECT_ROOT / ".streamlit" / "secrets.toml.example"
AUTH = {
    "redirect_uri": "https://billing.example.com/oauth2callback",
    "cookie_secret": COOKIE,
    "client_id": "dashboard",
    "client_secret": "client-secret-value",
    "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
}
SAFE = dict(
    env="production",
    demo="auto",
    database_url="postgresql+psycopg://billing:pw-123456@db.internal/billing",
    stripe_secret_key=SecretStr("sk_test_abcdefgh"),
    stripe_webhook_secret=SecretStr("whsec_abcdefgh"),
)


def settings(**changes) -> Settings:
    return Settings(**{**SAFE, **changes})


def kinds(s: Settings, section=AUTH) -> list[Unsafe]:
    return [p.kind for p in production_problems(s, section)]


def test_a_safe_production_configuration_starts():
    ensure_safe_to_start(settings(), AUTH)
    assert settings().demo_mode(sign_in_configured=True) is False


@pytest.mark.parametrize(
    ("changes", "section", "kind", "message"),
    [
        ({}, None, Unsafe.NO_SIGN_IN, r"sign-in is not configured.*auth\.redirect_uri"),
        (
            {},
            {k: v for k, v in AUTH.items() if k != "client_secret"},
            Unsafe.NO_SIGN_IN,
            r"missing: auth\.client_secret",
        ),
        (
            {},
            {**AUTH, "cookie_secret": secrets.token_urlsafe(8)},
            Unsafe.WEAK_COOKIE_SECRET,
            r"auth\.cookie_secret is too guessable \(about \d+ bits",
        ),
        (
            {},
            {**AUTH, "cookie_secret": "a" * 32},
            Unsafe.WEAK_COOKIE_SECRET,
            r"auth\.cookie_secret is too guessable \(about 0 bits",
        ),
        (
            {},
            {**AUTH, "cookie_secret": "ab" * 100},
            Unsafe.WEAK_COOKIE_SECRET,
            r"at least 256 needed",
        ),
        (
            {},
            {**AUTH, "cookie_secret": "replace-with-a-long-random-string"},
            Unsafe.PUBLISHED_COOKIE_SECRET,
            r"appears in the project's own files \(\.streamlit/secrets\.toml\.example\)",
        ),
        ({"demo": "on"}, AUTH, Unsafe.DEMO_ON, r"demo mode is on \(PRICING_DEMO=on\)"),
        (
            {"database_url": Settings.model_fields["database_url"].default},
            AUTH,
            Unsafe.DEFAULT_DATABASE,
            r"the database is the default SQLite file",
        ),
        (
            {"stripe_webhook_secret": None},
            AUTH,
            Unsafe.STRIPE_WITHOUT_WEBHOOK_SECRET,
            r"Stripe is configured \(PRICING_STRIPE_SECRET_KEY\) without a webhook secret",
        ),
        (
            {"stripe_webhook_secret": SecretStr("  ")},
            AUTH,
            Unsafe.STRIPE_WITHOUT_WEBHOOK_SECRET,
            r"PRICING_STRIPE_WEBHOOK_SECRET",
        ),
    ],
)
def test_each_unsafe_configuration_refuses_with_its_own_message(changes, section, kind, message):
    s = settings(**changes)
    assert kinds(s, section) == [kind]
    with pytest.raises(UnsafeConfiguration, match=message) as refused:
        ensure_safe_to_start(s, section)
    text = str(refused.value)
    assert text.startswith("PRICING_ENV=production refuses to start")
    for secret in ("pw-123456", "sk_test_abcdefgh", "client-secret-value", COOKIE):
        assert secret not in text


def test_the_example_secrets_file_as_it_is_does_not_start_production():
    section = load_auth_section([EXAMPLE])
    assert kinds(settings(), section) == [Unsafe.PUBLISHED_COOKIE_SECRET]


def test_a_secret_written_in_any_project_file_counts_as_published(tmp_path, monkeypatch):
    secret = secrets.token_urlsafe(48)
    assert kinds(settings(), {**AUTH, "cookie_secret": secret}) == []
    note = PROJECT_ROOT / "tests" / f"_published_{secrets.token_hex(4)}.md"
    note.write_text(f"cookie_secret = {secret}\n")
    try:
        assert kinds(settings(), {**AUTH, "cookie_secret": secret}) == [
            Unsafe.PUBLISHED_COOKIE_SECRET
        ]
    finally:
        note.unlink()


@pytest.mark.parametrize(
    ("secret", "enough"),
    [
        (secrets.token_hex(32), True),  # 64 hex digits: 256 bits
        (secrets.token_urlsafe(48), True),
        (secrets.token_hex(31), False),  # 248 bits
        ("Aa1!" * 40, False),  # four characters repeated: 2 bits each
        ("a" * 500, False),
    ],
)
def test_the_entropy_estimate_counts_randomness_not_length(secret, enough):
    assert (estimated_entropy_bits(secret) >= 256) is enough


@pytest.mark.parametrize(
    "written",
    [
        "sqlite:///data/pricing.db",
        "sqlite:///./data/../data/pricing.db",
        "sqlite+pysqlite:///{abs}",
    ],
)
def test_the_default_sqlite_file_is_refused_however_its_path_is_written(written, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    url = written.format(abs=PROJECT_ROOT / "data" / "pricing.db")
    assert kinds(settings(database_url=url)) == [Unsafe.DEFAULT_DATABASE]


def test_a_symbolic_link_to_the_default_file_is_the_default_file(tmp_path, monkeypatch):
    link = tmp_path / "db.sqlite"
    link.symlink_to(PROJECT_ROOT / "data" / "pricing.db")
    assert kinds(settings(database_url=f"sqlite:///{link}")) == [Unsafe.DEFAULT_DATABASE]
    other = tmp_path / "other.db"
    assert kinds(settings(database_url=f"sqlite:///{other}")) == []


def test_every_problem_is_named_at_once():
    s = settings(
        demo="on",
        database_url=Settings.model_fields["database_url"].default,
        stripe_webhook_secret=None,
    )
    assert kinds(s, None) == [
        Unsafe.NO_SIGN_IN,
        Unsafe.DEMO_ON,
        Unsafe.DEFAULT_DATABASE,
        Unsafe.STRIPE_WITHOUT_WEBHOOK_SECRET,
    ]


def test_email_needs_the_secret_that_signs_its_unsubscribe_links():
    email = {"smtp_url": SecretStr("smtp://mail.example.com:587?starttls=true")}
    assert kinds(settings(**email)) == [Unsafe.EMAIL_WITHOUT_NOTIFICATION_SECRET]
    signed = settings(**email, notification_secret=SecretStr(secrets.token_urlsafe(32)))
    assert kinds(signed) == []


def test_stripe_without_a_key_needs_no_webhook_secret():
    assert kinds(settings(stripe_secret_key=None, stripe_webhook_secret=None)) == []


def test_development_accepts_anything_and_demo_is_never_on_in_production():
    dev = settings(env="development", demo="on", stripe_webhook_secret=None)
    assert production_problems(dev, None) == []
    assert settings(demo="on").demo_mode(sign_in_configured=False) is False


@pytest.mark.parametrize(
    ("demo", "configured", "expected"),
    [("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False)],
)
def test_demo_auto_is_on_only_when_no_sign_in_is_configured(demo, configured, expected):
    s = Settings(env="development", demo=demo)
    assert s.demo_mode(sign_in_configured=configured) is expected


def test_named_providers_count_as_sign_in():
    section = {
        "redirect_uri": AUTH["redirect_uri"],
        "cookie_secret": COOKIE,
        "corp": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")},
    }
    config = sign_in_config(section)
    assert config.configured and config.providers == ("corp",)


def test_the_auth_section_is_read_from_the_secrets_files_later_ones_winning(tmp_path):
    first = tmp_path / "a.toml"
    second = tmp_path / "b.toml"
    first.write_text('[auth]\nredirect_uri = "x"\ncookie_secret = "one"\n')
    second.write_text('[auth]\ncookie_secret = "two"\n')
    assert load_auth_section([first, second, tmp_path / "missing.toml"]) == {
        "redirect_uri": "x",
        "cookie_secret": "two",
    }


def test_a_broken_secrets_file_is_named_without_its_content(tmp_path):
    bad = tmp_path / "secrets.toml"
    bad.write_text('[auth]\ncookie_secret = "s3cr3t-value\n')
    with pytest.raises(Exception, match="is not valid TOML") as err:
        load_auth_section([bad])
    assert "s3cr3t-value" not in str(err.value)


def test_database_passwords_are_redacted_from_urls():
    assert (
        redact_url("postgresql+psycopg://u:p%40ss@h:5432/db")
        == "postgresql+psycopg://u:***@h:5432/db"
    )
    assert "pw-123456" not in redact_url(SAFE["database_url"])


def test_secret_values_lists_every_configured_secret_and_redact_removes_them():
    values = secret_values(settings(), AUTH)
    assert set(values) == {
        "sk_test_abcdefgh",
        "whsec_abcdefgh",
        "pw-123456",
        COOKIE,
        "client-secret-value",
    }
    leaked = f"key sk_test_abcdefgh url {SAFE['database_url']} cookie {COOKIE}"
    cleaned = redact(leaked, values)
    assert not any(v in cleaned for v in values)
