"""Sign-in plumbing for the dashboard: Streamlit's native OIDC (`st.login`, `st.user`,
`st.logout`) configured by the `[auth]` section of `.streamlit/secrets.toml`, the
production start check, and the error handler that shows messages, not tracebacks.

No SQL and no money here: identity resolution is `pricing_core.access.auth.current_principal`.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import streamlit as st
from streamlit import config as st_config

from pricing_core.config import get_settings
from pricing_core.safety import (
    UnsafeConfiguration,
    demo_enabled,
    ensure_safe_to_start,
    install_log_redaction,
    load_auth_section,
    secret_values,
    sign_in_config,
)

_LOG = logging.getLogger("pricing_core.app")


def auth_section() -> dict[str, Any]:
    """The `[auth]` section Streamlit uses (its secrets files, `secrets.files`)."""
    files = st_config.get_option("secrets.files")
    return load_auth_section(files)


def sign_in_configured() -> bool:
    return sign_in_config(auth_section()).configured


def check_startup() -> None:
    """At server start (module import): refuse an unsafe production configuration,
    and redact every configured secret from the process's logs."""
    section = auth_section()
    settings = get_settings()
    install_log_redaction(secret_values(settings, section))
    try:
        ensure_safe_to_start(settings, section)
    except UnsafeConfiguration as exc:
        raise SystemExit(str(exc)) from None


def refuse_if_unsafe() -> None:
    """At every script run: an unsafe production configuration shows its message and
    stops (for servers started some other way than `streamlit run app.py`)."""
    try:
        ensure_safe_to_start(get_settings(), auth_section())
    except UnsafeConfiguration as exc:
        st.error(str(exc))
        st.stop()


def signed_in() -> bool:
    return sign_in_configured() and bool(st.user.get("is_logged_in"))


def claims() -> dict[str, Any] | None:
    """The signed-in user's ID-token claims, or None when not signed in (or when
    sign-in is not configured)."""
    if not signed_in():
        return None
    return {k: v for k, v in st.user.to_dict().items() if k != "tokens"}


def needs_sign_in() -> bool:
    """True when sign-in is configured and nobody is signed in (and not demo mode)."""
    return sign_in_configured() and not signed_in() and not demo_enabled()


def sign_in_page() -> None:
    """The only page anonymous visitors get: one button per configured provider."""
    st.title("AI usage & billing")
    st.write("Sign in to see your balance, usage and costs.")
    for provider in sign_in_config(auth_section()).providers:
        label = "Sign in" if provider is None else f"Sign in with {provider}"
        args = () if provider is None else (provider,)
        st.button(label, on_click=st.login, args=args, type="primary", key=f"login-{provider}")


def signed_in_sidebar() -> None:
    """Who is signed in, and the sign-out button."""
    if not signed_in():
        return
    with st.sidebar:
        who = st.user.get("email") or st.user.get("name") or "signed in"
        st.caption(f"Signed in as **{who}**")
        st.button("Sign out", on_click=st.logout, key="logout")


def on_script_error(exc: Exception) -> bool:
    """`st.App(on_script_error=...)`: log the error server-side (secrets redacted by
    the log filter) and show a message with a reference instead of a traceback."""
    reference = secrets.token_hex(4)
    _LOG.error("page error, reference %s", reference, exc_info=exc)
    st.error(
        f"Something went wrong and this page could not be shown (reference {reference}). "
        "The details are in the server log."
    )
    return True
