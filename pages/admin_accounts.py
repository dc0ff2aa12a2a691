import uuid
from collections import Counter

import streamlit as st

from pages import _format, _session
from pricing_core.adapters.audit import list_audit
from pricing_core.admin import accounts as aa
from pricing_core.admin import grants
from pricing_core.analytics import accounts as account_views
from pricing_core.analytics import revenue
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError

viewer = _session.admin_principal()
engine = _session.engine()
st.title("Accounts")

find_tab, grant_tab = st.tabs(["Find an account", "Bulk grant"])

with find_tab:
    query = st.text_input("Search by account id, name or email", key="accounts_query")
    found = account_views.search_accounts(engine, viewer, query, limit=50)
    _session.table(_format.account_rows(found))
    if not found:
        st.stop()
    names = {a.account_id: a.name for a in found}
    account_id = st.selectbox(
        "Account", list(names), format_func=lambda i: f"{names[i]} ({i})", key="accounts_pick"
    )
    summary = account_views.account_summary(engine, viewer, account_id)
    cols = st.columns(4)
    cols[0].metric("Balance", _format.amount(summary.balance))
    cols[1].metric("Available", _format.amount(summary.available))
    cols[2].metric("Held", _format.amount(summary.held))
    cols[3].metric("Spend this month", _format.amount(summary.spend_this_month))
    st.caption(
        f"Plan: **{summary.plan}** · {summary.kind} account · "
        f"users: {', '.join(summary.emails) or 'no email on file'}"
    )
    _session.view_as_link(account_id)

    adjust_tab, ledger_tab, usage_tab, holds_tab, audit_tab = st.tabs(
        ["Adjust balance", "Ledger", "Usage", "Holds", "Audit"]
    )
    with adjust_tab:
        nonce = st.session_state.setdefault("adjust_nonce", uuid.uuid4().hex)
        threshold = _format.amount(aa.confirm_threshold())
        with st.form("adjust_form"):
            mode = st.radio("Change", ["Adjust by", "Set to"], horizontal=True, key="adjust_mode")
            amount = st.text_input(
                "USD (adjust: negative takes credit back; set: the new balance)",
                placeholder="5.00",
                key="adjust_amount",
            )
            reason = st.text_area(
                "Reason (required, kept in the audit log)", max_chars=1000, key="adjust_reason"
            )
            confirmed = st.checkbox(
                f"I confirm a change of {threshold} or more", key="adjust_confirm"
            )
            submitted = st.form_submit_button("Apply", type="primary", key="adjust_submit")
        if submitted:
            try:
                posting = (aa.set_balance if mode == "Set to" else aa.adjust_balance)(
                    engine,
                    viewer,
                    account_id,
                    amount,
                    reason=reason,
                    idempotency_key=nonce,
                    confirmed=confirmed,
                )
            except aa.ConfirmationRequired as exc:
                st.warning(f"{exc}: tick the confirmation box and apply again.")
            except PricingError as exc:
                st.error(str(exc))
            else:
                st.session_state["adjust_nonce"] = uuid.uuid4().hex
                _session.clear_cached()
                st.success(
                    f"Applied {_format.amount(posting.entry.amount)}: "
                    f"the balance is now {_format.amount(posting.entry.balance_after)}."
                )
    with ledger_tab:
        _session.table(
            _format.ledger_rows(account_views.account_ledger(engine, viewer, account_id, limit=200))
        )
    with usage_tab:
        span = _session.cached(revenue.usage_span, viewer)
        end = span[1] if span else None
        start, end = _session.date_range("accounts_usage_range", last=end)
        _session.table(
            _format.account_usage_rows(
                account_views.account_usage(engine, viewer, account_id, start=start, end=end)
            )
        )
    with holds_tab:
        _session.table(_format.hold_rows(account_views.account_holds(engine, viewer, account_id)))
    with audit_tab:
        _session.table(_format.audit_rows(list_audit(engine, viewer, account_id=account_id)))

with grant_tab:
    st.caption(
        "Grants the same amount once to each listed account. Re-submitting the same batch "
        "key never grants twice: rows already granted are reported as such."
    )
    with st.form("grant_form"):
        pasted = st.text_area(
            "Account ids or emails (one per line, or comma-separated)", key="grant_targets"
        )
        upload = st.file_uploader(
            "...or upload a CSV / text file",
            type=["csv", "txt"],
            max_upload_size=max(1, get_settings().admin_upload_max_bytes // 1_000_000),
        )
        amount = st.text_input("Amount in USD per account", placeholder="5.00", key="grant_amount")
        reason = st.text_input("Reason (required)", key="grant_reason")
        batch_key = st.text_input(
            "Batch key (names this grant; keep it to re-submit safely)",
            value=f"grant-{_session.today().isoformat()}",
            key="grant_batch",
        )
        submitted = st.form_submit_button("Grant", type="primary", key="grant_submit")
    if submitted:
        try:
            targets = grants.parse_targets(upload.getvalue() if upload else pasted)
            report = grants.bulk_grant(
                engine, viewer, targets, amount=amount, reason=reason, batch_key=batch_key
            )
        except PricingError as exc:
            st.error(str(exc))
        else:
            _session.clear_cached()
            st.session_state["grant_report"] = report
    report = st.session_state.get("grant_report")
    if report:
        counts = Counter(str(r.status) for r in report)
        st.success(" · ".join(f"{n} {status}" for status, n in counts.items()))
        _session.table(_format.grant_rows(report))
        st.download_button(
            "Download the report (CSV)",
            grants.grant_report_csv(report),
            "grant-report.csv",
            "text/csv",
        )
