from datetime import UTC, datetime, time, timedelta

import streamlit as st

from pages import _format, _session
from pricing_core.admin.catalog import catalog_status
from pricing_core.admin.integrity import (
    integrity_report,
    ledger_check,
    provider_shape_report,
    rollout_report,
    stripe_reconciliation,
)
from pricing_core.billing.stripe_api import payments_configured
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.periods import local_moment
from pricing_core.domain.rollout import Stage
from pricing_core.notify.deliver import notification_log

viewer = _session.admin_principal()
st.title("Integrity")

report = integrity_report(_session.engine(), viewer)

st.subheader("Ledger")
st.caption(
    "Checks every wallet, ledger entry, usage event and rollup: balances = sum of "
    "entries, holds, the balance chain, charges = ledger entries, rollups = events. "
    "It reads the whole ledger, so it runs when you ask (or nightly with "
    "`pricing-core ledger verify`)."
)
if st.button("Verify the ledger now", type="primary"):
    with st.spinner("Reading every wallet, ledger entry, usage event and rollup..."):
        st.session_state["ledger_check"] = (
            ledger_check(_session.engine(), viewer),
            datetime.now(UTC),
        )
if "ledger_check" in st.session_state:
    ledger, verified_at = st.session_state["ledger_check"]
    if ledger.ok:
        st.success(
            f"Ledger OK: {ledger.wallets:,} wallets, {ledger.entries:,} ledger entries and "
            f"{ledger.events:,} usage events checked at {_format.when(verified_at, seconds=True)}."
        )
    else:
        st.error(f"{len(ledger.violations)} ledger violation(s) found:")
        for violation in ledger.violations:
            st.markdown(f"- `{violation}`")

st.subheader("Stripe reconciliation")
if not payments_configured():
    st.info("Stripe is not configured (no secret key), so there is nothing to reconcile.")
else:
    st.caption(
        "Lists the credit-pack Checkout Sessions Stripe has since the chosen day and "
        "compares each with the ledger. Fulfilling is exactly-once and audited."
    )
    since = st.date_input("Sessions created since", value=_session.today() - timedelta(days=30))
    left, right = st.columns(2)
    check = left.button("Reconcile with Stripe")
    fix = right.button("Reconcile and credit paid sessions that were not credited")
    if check or fix:
        try:
            with st.spinner("Asking Stripe for its Checkout Sessions..."):
                rec = stripe_reconciliation(
                    _session.engine(),
                    viewer,
                    since=local_moment(since, time(0), get_settings().tz),
                    fix=fix,
                )
        except PricingError as exc:
            st.error(str(exc))
        else:
            cols = st.columns(3)
            cols[0].metric("Sessions checked", f"{rec.checked:,}")
            cols[1].metric("Credited", f"{rec.credited:,}")
            cols[2].metric("Unresolved", f"{len(rec.unresolved):,}")
            if rec.ok:
                st.success("Stripe and the ledger agree on every credit-pack session.")
            if rec.discrepancies:
                _session.table(
                    [
                        {
                            "finding": str(d.finding),
                            "session": d.session_id,
                            "account": d.account_id or "-",
                            "detail": d.detail,
                            "fixed": "yes" if d.fixed else "no",
                        }
                        for d in rec.discrepancies
                    ]
                )

st.subheader("Price catalog")
stale, loaded = report.staleness, catalog_status(_session.engine(), viewer)
cols = st.columns(3)
cols[0].metric("Provider prices", stale.catalog_version)
cols[1].metric("Snapshot has prices up to", str(stale.snapshot_prices_as_of or "-"))
cols[2].metric("Loaded data file", _format.when(loaded.loaded_at) if loaded.loaded_at else "none")
last = _format.when(stale.last_override_at) if stale.last_override_at else "never"
st.caption(f"{stale.scheduled_changes} dated price change(s) to come; last edit {last}.")
shapes = provider_shape_report(_session.engine(), viewer)
passed = [r for r in shapes if r.ok]
(st.caption if len(passed) == len(shapes) else st.error)(
    f"Provider-shape table: {len(passed)} of {len(shapes)} payloads cost what the providers "
    "publish."
)
_session.table(_format.shape_rows(shapes))

st.subheader(f"Since {report.since.isoformat()}")
cols = st.columns(3)
cols[0].metric("Rejected API requests", f"{report.api_rejected:,}")
cols[1].metric("Webhook failures", f"{report.webhook_failed:,}")
cols[2].metric("Unpriced usage events", f"{report.unpriced_events:,}")
st.caption(f"Checked at {_format.when(report.checked_at, seconds=True)}.")
if report.warehouse is not None:
    st.caption(
        f"Analytics warehouse `{report.warehouse.where}`: events up to id "
        f"{report.warehouse.watermark:,} copied; {report.warehouse.behind:,} since, read "
        "from the database until the next `analytics-sync`."
    )

st.subheader("Rollout")
rollout = rollout_report(_session.engine(), viewer)
st.caption(
    f"Budget enforcement: `{rollout.enforcement}` · billing: `{rollout.billing}` "
    "(PRICING_ENFORCEMENT_ROLLOUT, PRICING_ENFORCEMENT_GRACE_DAYS, PRICING_BILLING_ROLLOUT)."
)
cols = st.columns(4)
cols[0].metric("Enforced", f"{rollout.count(Stage.ON):,}")
cols[1].metric("In grace period", f"{rollout.count(Stage.GRACE):,}")
cols[2].metric("Not enforced", f"{rollout.count(Stage.OFF):,}")
cols[3].metric("Billing on", f"{rollout.billing_on:,}")
_session.table(_format.cohort_rows(rollout.rows))
if rollout.accounts > len(rollout.rows):
    st.caption(f"The newest {len(rollout.rows):,} of {rollout.accounts:,} accounts.")

st.subheader("Notifications")
status = st.selectbox(
    "Status", ["all", "pending", "sent", "failed", "skipped"], key="notification_status"
)
log = notification_log(_session.engine(), viewer, status=None if status == "all" else status)
if not log:
    st.info("No notification yet: they appear here as charges, alerts and jobs create them.")
else:
    _session.table(_format.notification_rows(log))
    st.caption("`pricing-core jobs run` delivers them; failed ones are retried hourly.")
