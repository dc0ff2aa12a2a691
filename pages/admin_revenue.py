import streamlit as st

from pages import _charts, _format, _session
from pricing_core.analytics import revenue, sales
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError

viewer = _session.admin_principal()
st.title("Revenue")
st.caption(
    "Cash in (credit packs and plan fees, net of refunds) is dated when it is received; "
    "usage revenue (what wallets were charged) and provider cost on the day the usage "
    f"happened. Days are in {get_settings().timezone}."
)

span = _session.cached(revenue.usage_span, viewer)
left, right = st.columns([3, 2])
with left:
    start, end = _session.date_range("revenue_range", last=span[1] if span else None)
with right:
    granularity = _session.granularity("revenue_granularity")

try:
    report = _session.cached(
        revenue.revenue_report, viewer, start=start, end=end, granularity=granularity
    )
    debt = _session.cached(revenue.liability, viewer)
    by_model = _session.cached(revenue.revenue_breakdown, viewer, start=start, end=end, by="model")
    by_operation = _session.cached(
        revenue.revenue_breakdown, viewer, start=start, end=end, by="operation"
    )
    top = _session.cached(revenue.top_accounts, viewer, start=start, end=end, limit=10)
except PricingError as exc:
    st.error(str(exc))
    st.stop()

totals = report.totals
cols = st.columns(5)
cols[0].metric("Cash in", _format.amount(totals.cash_in))
cols[1].metric("Usage revenue", _format.amount(totals.usage_revenue))
cols[2].metric("Provider cost", _format.amount(totals.provider_cost))
cols[3].metric(
    "Margin", _format.amount(totals.margin), _format.pct(totals.margin_pct), delta_color="off"
)
cols[4].metric(
    "Prepaid liability",
    _format.amount(debt.outstanding),
    help=f"Sum of positive balances ({debt.accounts_in_credit} accounts): paid, not used yet.",
)
if debt.accounts_owing:
    st.caption(
        f"{debt.accounts_owing} account(s) owe {_format.amount(debt.owed_by_customers)} "
        "(negative balances after refunds or overdraft imports)."
    )

st.plotly_chart(_charts.revenue_chart(report.periods), key="revenue_chart")
with st.expander("Figures per period"):
    _session.table(
        [
            {
                "period": p.period.isoformat(),
                "cash in": p.cash_in,
                "usage revenue": p.usage_revenue,
                "provider cost": p.provider_cost,
                "margin": p.margin,
                "margin %": p.margin_pct,
                "requests": p.requests,
            }
            for p in report.periods
        ]
    )

st.subheader("Breakdowns")
tab_model, tab_operation, tab_plan = st.tabs(["By model", "By operation", "By plan"])
for tab, rows, dimension in (
    (tab_model, by_model, "model"),
    (tab_operation, by_operation, "operation"),
):
    with tab:
        _session.revenue_series_chart(
            viewer,
            by=dimension,
            title=f"Usage revenue by {dimension}",
            key=f"revenue_by_{dimension}",
            start=start,
            end=end,
            granularity=granularity,
        )
        _session.table(
            [
                {
                    dimension: r.label,
                    "requests": r.requests,
                    "usage revenue": r.usage_revenue,
                    "provider cost": r.provider_cost,
                    "margin": r.margin,
                    "margin %": r.margin_pct,
                }
                for r in rows
            ]
        )
with tab_plan:
    st.caption(
        "Each account-day counts under the plan the account was on at the end of that day. "
        "Plan fees count per monthly billing cycle of paid subscriptions."
    )
    _session.table(
        [
            {
                "plan": p.plan,
                "accounts": p.accounts,
                "usage revenue": p.usage_revenue,
                "plan fees": p.plan_fees,
                "provider cost": p.provider_cost,
                "margin": p.margin,
            }
            for p in _session.cached(sales.revenue_by_plan, viewer, start=start, end=end)
        ]
    )

st.subheader("Credit pack sales")
_session.table(
    [
        {
            "package": s.package,
            "sold": s.sold,
            "sales": s.sales,
            "refunded": s.refunded,
            "net": s.net,
        }
        for s in _session.cached(sales.package_sales, viewer, start=start, end=end)
    ]
)

st.subheader("Top accounts by spend")
_session.table(_format.top_account_rows(top))
