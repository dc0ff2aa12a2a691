"""Usage: cost or tokens over time by model and operation, shares, models, CSV."""

import pandas as pd
import streamlit as st

from pages import _charts, _format, _session
from pricing_core import analytics
from pricing_core.analytics import explore

MODEL_COLUMNS = {
    "Requests": _format.count_column("Requests"),
    "Input tokens": _format.count_column("Input tokens"),
    "Output tokens": _format.count_column("Output tokens"),
    "Cost": _format.money_column("Cost"),
    "Avg cost / request": _format.money_column("Avg cost / request"),
}


def models_frame(table: pd.DataFrame) -> pd.DataFrame:
    """`analytics.model_table` for display, amounts by `money.format_money`."""
    return pd.DataFrame(
        {
            "Model": table["model"],
            "Provider": table["provider"],
            "Requests": table["requests"],
            "Input tokens": table["input_tokens"],
            "Output tokens": table["output_tokens"],
            "Cost": [_format.amount(v) for v in table["cost"]],
            "Avg cost / request": [_format.amount(v) for v in table["avg_cost"]],
        }
    )


viewer = _session.principal()
st.title("Usage")
span = _session.cached(analytics.usage_range, viewer)
if span is None:
    st.info(
        "No usage yet. Charts of your spend by model and operation appear here after "
        "your first request.",
        icon=":material/bar_chart:",
    )
    st.stop()

start, end = _session.date_range("usage_dates", first=span[0], last=span[1], days=90, label="Dates")
left, middle, right = st.columns([1, 1, 2])
granularity = _session.choice(left, "Granularity", analytics.Granularity, key="usage_granularity")
measure = _session.choice(middle, "Show", analytics.Measure, key="usage_measure")
full = _session.cached(analytics.usage_report, viewer, start=start, end=end)
with right:
    models_col, operations_col = st.columns(2)
    models = models_col.multiselect(
        "Models", sorted(full.daily["model"].unique()), placeholder="All"
    )
    operations = operations_col.multiselect(
        "Operations", sorted(full.daily["operation"].unique()), placeholder="All"
    )
report = analytics.filter_report(full, models=models, operations=operations)

requests, tokens, cost = analytics.report_totals(report)
a, b, c = st.columns(3)
a.metric("Cost", _format.amount(cost), border=True)
b.metric("Requests", _format.tokens(requests), border=True)
c.metric("Tokens", _format.tokens(tokens), border=True)
if report.empty:
    st.info("No usage in this range. Widen the dates or clear the filters.")
    st.stop()

by_model, by_operation = st.columns(2)
for column, dimension in (
    (by_model, analytics.Dimension.MODEL),
    (by_operation, analytics.Dimension.OPERATION),
):
    with column:
        series = analytics.usage_series(
            report, granularity=granularity, by=dimension, measure=measure
        )
        st.plotly_chart(
            _charts.stacked_chart(series, measure=measure, title=f"By {dimension}"),
            key=f"chart_{dimension}",
        )
        share = analytics.usage_share(report, by=dimension, measure=measure)
        st.plotly_chart(
            _charts.share_chart(share, measure=measure, title=f"Share by {dimension}"),
            key=f"share_{dimension}",
        )

hourly = explore.hourly_view(
    start,
    end,
    filters={explore.Group.MODEL: tuple(models), explore.Group.OPERATION: tuple(operations)},
)
if hourly is not None:  # a plain link: the page also renders outside the navigation
    st.markdown(f":material/schedule: [See these days hour by hour in Explore]({hourly})")

st.subheader("Models")
st.dataframe(
    models_frame(analytics.model_table(report)),
    hide_index=True,
    width="stretch",
    column_config=MODEL_COLUMNS,
)
st.download_button(
    "Download these usage events (CSV)",
    data=lambda: analytics.usage_events_csv(
        _session.engine(), viewer, start=start, end=end, models=models, operations=operations
    ),
    file_name=f"usage_{start}_{end}.csv",
    mime="text/csv",
    icon=":material/download:",
)
