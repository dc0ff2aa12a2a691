import streamlit as st

from pages import _format, _session
from pricing_core.analytics import revenue, spend_watch
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError

viewer = _session.admin_principal()
st.title("Usage explorer")
st.caption(f"System-wide usage from the daily rollups. Days are in {get_settings().timezone}.")

span = _session.cached(revenue.usage_span, viewer)
left, right = st.columns([3, 2])
with left:
    start, end = _session.date_range("usage_range", last=span[1] if span else None)
with right:
    granularity = _session.granularity("usage_granularity")

try:
    tabs = st.tabs(["By model", "By provider", "By operation"])
    for tab, dimension in zip(tabs, ("model", "provider", "operation"), strict=True):
        with tab:
            _session.revenue_series_chart(
                viewer,
                by=dimension,
                title=f"Charged by {dimension}",
                key=f"usage_by_{dimension}",
                start=start,
                end=end,
                granularity=granularity,
            )
            rows = _session.cached(
                revenue.revenue_breakdown, viewer, start=start, end=end, by=dimension
            )
            _session.table(_format.usage_rows(rows, dimension))
except PricingError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("High-cost accounts")
as_of = st.date_input(
    "As of (day)",
    value=end,
    key="usage_as_of",
    format="YYYY-MM-DD",
    help="Today by default when there is usage today; the projection assumes the month "
    "continues at its pace so far.",
)
high = _session.cached(spend_watch.high_cost_accounts, viewer, as_of=as_of, limit=10)
threshold = _format.amount(get_settings().high_cost_usd)
st.caption(f"Accounts that spent at least {threshold} that day (PRICING_HIGH_COST_USD).")
if not high:
    st.caption(f"No account spent {threshold} or more on {as_of.isoformat()}.")
else:
    _session.table(
        [
            {
                "account": f"{a.name} ({a.account_id})",
                "spend that day": a.spend_today,
                "month to date": a.month_to_date,
                "projected month end": a.projected_month_end,
                "balance": a.balance,
            }
            for a in high
        ]
    )

st.subheader("Spend-rate jumps")
st.caption(
    "Rule: an account is listed when it spent at least $1.00 on the day and its daily "
    "rate is at least 3x its own average over the 14 days before (or it had no spend "
    "then: new spend)."
)
jumps = _session.cached(spend_watch.spend_anomalies, viewer, as_of=as_of)
_session.table(
    [
        {
            "account": f"{a.name} ({a.account_id})",
            "spend that day": a.recent_spend,
            "baseline per day": a.baseline_daily,
            "jump": "new spend" if a.ratio is None else f"x{a.ratio}",
        }
        for a in jumps
    ]
)

st.subheader("Unpriced usage queue")
queue = _session.cached(spend_watch.unpriced_queue, viewer)
if not queue:
    st.success("No unpriced usage: every recorded call had a price.")
else:
    st.warning(
        "These calls were recorded without a price (model unknown to the catalog). "
        "They were not charged; add the model's price, then re-import them."
    )
    _session.table(
        [
            {
                "model": f"{g.provider}/{g.model}",
                "operation": g.operation,
                "events": g.events,
                "accounts": g.accounts,
                "input tokens": g.input_tokens,
                "output tokens": g.output_tokens,
                "first": _format.when(g.first_at, seconds=True),
                "last": _format.when(g.last_at, seconds=True),
            }
            for g in queue
        ]
    )
