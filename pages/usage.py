"""Usage: cost or tokens over time by model and operation, shares, models, CSV."""

import streamlit as st

from pages import _ui
from pricing_core import analytics

viewer = _ui.principal()
st.title("Usage")
span = _ui.cached(analytics.usage_range, viewer)
if span is None:
    st.info(
        "No usage yet. Charts of your spend by model and operation appear here after "
        "your first request.",
        icon=":material/bar_chart:",
    )
    st.stop()

start, end = _ui.date_range("Dates", span, key="usage_dates")
left, middle, right = st.columns([1, 1, 2])
granularity = _ui.choice(left, "Granularity", analytics.Granularity, key="usage_granularity")
measure = _ui.choice(middle, "Show", analytics.Measure, key="usage_measure")
full = _ui.cached(analytics.usage_report, viewer, start=start, end=end)
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
a.metric("Cost", _ui.usd_spend(cost), border=True)
b.metric("Requests", _ui.tokens(requests), border=True)
c.metric("Tokens", _ui.tokens(tokens), border=True)
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
            _ui.stacked_chart(series, measure=measure, title=f"By {dimension}"),
            key=f"chart_{dimension}",
        )
        share = analytics.usage_share(report, by=dimension, measure=measure)
        st.plotly_chart(
            _ui.share_chart(share, measure=measure, title=f"Share by {dimension}"),
            key=f"share_{dimension}",
        )

st.subheader("Models")
st.dataframe(
    _ui.models_frame(analytics.model_table(report)),
    hide_index=True,
    width="stretch",
    column_config=_ui.MODEL_COLUMNS,
)
st.download_button(
    "Download these usage events (CSV)",
    data=lambda: analytics.usage_events_csv(
        _ui.engine(), viewer, start=start, end=end, models=models, operations=operations
    ),
    file_name=f"usage_{start}_{end}.csv",
    mime="text/csv",
    icon=":material/download:",
)
