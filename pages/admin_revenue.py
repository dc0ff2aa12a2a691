import streamlit as st

from pages import _admin
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError

viewer = _admin.admin_principal()
st.title("Revenue")
st.caption(
    "Cash in (credit packs and plan fees, net of refunds) is dated when it is received; "
    "usage revenue (what wallets were charged) and provider cost on the day the usage "
    f"happened. Days are in {get_settings().timezone}."
)

span = _admin.cached("analytics.revenue", "usage_span", viewer)
left, right = st.columns([3, 2])
with left:
    start, end = _admin.date_range("revenue_range", last_day=span[1] if span else None)
with right:
    granularity = _admin.granularity("revenue_granularity")

try:
    report = _admin.cached(
        "analytics.revenue", "revenue_report", viewer, start=start, end=end, granularity=granularity
    )
    debt = _admin.cached("analytics.revenue", "liability", viewer)
    by_model = _admin.cached(
        "analytics.revenue", "revenue_breakdown", viewer, start=start, end=end, by="model"
    )
    by_operation = _admin.cached(
        "analytics.revenue", "revenue_breakdown", viewer, start=start, end=end, by="operation"
    )
    top = _admin.cached("analytics.revenue", "top_accounts", viewer, start=start, end=end, limit=10)
except PricingError as exc:
    st.error(str(exc))
    st.stop()

totals = report.totals
cols = st.columns(5)
cols[0].metric("Cash in", _admin.usd_total(totals.cash_in))
cols[1].metric("Usage revenue", _admin.usd_total(totals.usage_revenue))
cols[2].metric("Provider cost", _admin.usd_total(totals.provider_cost))
cols[3].metric(
    "Margin", _admin.usd_total(totals.margin), _admin.pct(totals.margin_pct), delta_color="off"
)
cols[4].metric(
    "Prepaid liability",
    _admin.usd_total(debt.outstanding),
    help=f"Sum of positive balances ({debt.accounts_in_credit} accounts): paid, not used yet.",
)
if debt.accounts_owing:
    st.caption(
        f"{debt.accounts_owing} account(s) owe {_admin.usd_total(debt.owed_by_customers)} "
        "(negative balances after refunds or overdraft imports)."
    )

st.plotly_chart(_admin.revenue_chart(report.periods), key="revenue_chart")
with st.expander("Figures per period"):
    _admin.table(
        [
            {
                "period": p.period.isoformat(),
                "cash in": _admin.usd(p.cash_in),
                "usage revenue": _admin.usd(p.usage_revenue),
                "provider cost": _admin.usd(p.provider_cost),
                "margin": _admin.usd(p.margin),
                "margin %": _admin.pct(p.margin_pct),
                "requests": f"{p.requests:,}",
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
        series = _admin.cached(
            "analytics.revenue",
            "revenue_series",
            viewer,
            start=start,
            end=end,
            granularity=granularity,
            by=dimension,
        )
        st.plotly_chart(
            _admin.bar_chart(series, value="usage_revenue", title=f"Usage revenue by {dimension}"),
            key=f"revenue_by_{dimension}",
        )
        _admin.table(
            [
                {
                    dimension: r.label,
                    "requests": f"{r.requests:,}",
                    "usage revenue": _admin.usd(r.usage_revenue),
                    "provider cost": _admin.usd(r.provider_cost),
                    "margin": _admin.usd(r.margin),
                    "margin %": _admin.pct(r.margin_pct),
                }
                for r in rows
            ]
        )
with tab_plan:
    st.caption(
        "Each account-day counts under the plan the account was on at the end of that day. "
        "Plan fees count per monthly billing cycle of paid subscriptions."
    )
    _admin.table(
        [
            {
                "plan": p.plan,
                "accounts": p.accounts,
                "usage revenue": _admin.usd(p.usage_revenue),
                "plan fees": _admin.usd(p.plan_fees),
                "provider cost": _admin.usd(p.provider_cost),
                "margin": _admin.usd(p.margin),
            }
            for p in _admin.cached(
                "analytics.sales", "revenue_by_plan", viewer, start=start, end=end
            )
        ]
    )

st.subheader("Credit pack sales")
_admin.table(
    [
        {
            "package": s.package,
            "sold": s.sold,
            "sales": _admin.usd_total(s.sales),
            "refunded": _admin.usd_total(s.refunded),
            "net": _admin.usd_total(s.net),
        }
        for s in _admin.cached("analytics.sales", "package_sales", viewer, start=start, end=end)
    ]
)

st.subheader("Top accounts by spend")
_admin.table(
    [
        {
            "account": f"{a.name} ({a.account_id})",
            "spend": _admin.usd(a.spend),
            "provider cost": _admin.usd(a.provider_cost),
            "requests": f"{a.requests:,}",
            "balance": _admin.usd(a.balance),
        }
        for a in top
    ]
)
