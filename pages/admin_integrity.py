import streamlit as st

from pages import _admin, _ui
from pricing_core.admin_integrity import integrity_report

viewer = _admin.admin_principal()
st.title("Integrity")

report = integrity_report(_ui.engine(), viewer)
ledger = report.ledger
if ledger.ok:
    st.success(
        f"Ledger OK: {ledger.wallets:,} wallets, {ledger.entries:,} ledger entries and "
        f"{ledger.events:,} usage events checked (balances = sum of entries, holds, "
        "balance chain, charges = ledger entries, rollups = events)."
    )
else:
    st.error(f"{len(ledger.violations)} ledger violation(s) found:")
    for violation in ledger.violations:
        st.markdown(f"- `{violation}`")

st.subheader("Price catalog")
stale = report.staleness
cols = st.columns(3)
cols[0].metric("Provider prices", stale.catalog_version)
cols[1].metric("Snapshot has prices up to", str(stale.snapshot_prices_as_of or "-"))
cols[2].metric(
    "Last operator price change",
    _admin.when(stale.last_override_at) if stale.last_override_at else "never",
)
if stale.scheduled_changes:
    st.caption(f"The snapshot also knows {stale.scheduled_changes} dated price change(s) to come.")

st.subheader(f"Since {report.since.isoformat()}")
cols = st.columns(3)
cols[0].metric("Rejected API requests", f"{report.api_rejected:,}")
cols[1].metric("Webhook failures", f"{report.webhook_failed:,}")
cols[2].metric("Unpriced usage events", f"{report.unpriced_events:,}")
st.caption(f"Checked at {_admin.when(report.checked_at)}.")
