"""Explore: any question about spend. The choice lives in the URL, so a view can be
shared and survives a reload; the chart's data downloads as CSV."""

from datetime import date, timedelta

import streamlit as st

from pages import _charts, _format, _session
from pricing_core.analytics import explore as ex

viewer = _session.principal()
st.title("Explore")
url = st.query_params
metrics = [m for m in ex.Metric if viewer.is_admin or m is not ex.Metric.PROVIDER_COST]
LABELS = {"avg_cost": "Avg cost / request", "provider_cost": "Provider cost", "api_key": "API key"}


def label(value: str) -> str:
    return LABELS.get(value, value.replace("_", " ").capitalize())


def from_url(name: str, options: list, default):  # type: ignore[no-untyped-def]
    value = url.get(name)
    return next((o for o in options if str(o) == value), default)


def day_from_url(name: str, default: date) -> date:
    try:
        return date.fromisoformat(url.get(name, ""))
    except ValueError:
        return default


end = day_from_url("to", _session.today())
start = day_from_url("from", end - timedelta(days=29))
scope = None
if viewer.is_admin:
    scope = (
        st.text_input(
            "Account (* for every account)", value=url.get("scope", "*"), key="ex_account"
        ).strip()
        or "*"
    )
groups = ex.available_groups(viewer, scope)
top = st.columns([2, 2, 2, 1.4])
picked = top[0].date_input("Dates", value=(start, end), key="ex_dates", format="YYYY-MM-DD")
if isinstance(picked, tuple) and len(picked) == 2:
    start, end = picked
metric = top[1].selectbox("Metric", metrics, metrics.index(from_url("metric", metrics, metrics[0])),
                          format_func=label, key="ex_metric")  # fmt: skip
steps = list(ex.Step)
step = top[2].segmented_control("Step", steps, default=from_url("step", steps, ex.Step.DAY),
                                format_func=label, key="ex_step") or ex.Step.DAY  # fmt: skip
cumulative = top[3].toggle("Cumulative", value=url.get("cum") == "1", key="ex_cum")
middle = st.columns(2)
group = middle[0].selectbox("Group by", groups, groups.index(from_url("group", groups, groups[0])),
                            format_func=label, key="ex_group")  # fmt: skip
subs = [None, *(g for g in groups if g is not group)]
subgroup = middle[1].selectbox("Then by", subs, subs.index(from_url("sub", subs, None)),
                               format_func=lambda g: "-" if g is None else label(g),
                               key="ex_sub")  # fmt: skip

values = _session.cached(ex.dimension_values, viewer, start=start, end=end, account_id=scope)
filters = {}
with st.expander("Filters", expanded=any(url.get(f"f_{g}") for g in groups)):
    cols = st.columns(len(values))
    for col, (dim, options) in zip(cols, values.items(), strict=True):
        wanted = [v for v in url.get_all(f"f_{dim}") if v in options]
        kept = col.multiselect(label(dim), options, default=wanted, placeholder="All",
                               key=f"ex_f_{dim}")  # fmt: skip
        if kept:
            filters[dim] = tuple(kept)

question = ex.Question(start, end, metric, group, subgroup, step, cumulative, filters)
url.from_dict(ex.replace_url_params({k: url.get_all(k) for k in url}, question, scope=scope))
answer = _session.cached(ex.explore, viewer, question, account_id=scope)

total = _format.amount(answer.total) if metric.money else _format.tokens(answer.total)
st.metric(f"{label(metric)}, {start} to {end}", total, border=True)
if answer.points.empty:
    st.info("Nothing in this range. Widen the dates or clear the filters.")
    st.stop()
title = f"{label(metric)} by {label(group)}" + (f" and {label(subgroup)}" if subgroup else "")
chart = st.plotly_chart(
    _charts.explore_chart(answer.points, money=metric.money, title=title),
    key="explore_chart", on_select="rerun", selection_mode="points",
)  # fmt: skip
st.download_button("Download CSV", answer.csv(), file_name=f"explore-{start}-{end}.csv",
                   mime="text/csv", key="ex_csv")  # fmt: skip


def table_row(period, group_value, sub_value, value):  # type: ignore[no-untyped-def]
    row = {"period": _format.when(period) if step is ex.Step.HOUR else period.isoformat()}
    row[label(group)] = group_value
    if subgroup is not None:
        row[label(subgroup)] = sub_value
    row[label(metric)] = value
    return row


_session.table([table_row(*r) for r in answer.points.itertuples(index=False)])
st.caption(f"From `{answer.source}`. Groups past the biggest {ex.TOP_GROUPS} are summed as "
           f"'{ex.OTHER}'.")  # fmt: skip

bars = [ex.Bar(p, g, sub) for p, g, sub, _ in answer.points.itertuples(index=False)]
clicked = [
    p["customdata"][0] for p in (chart.selection.points if chart else []) if p.get("customdata")
]
if clicked and clicked[0] < len(bars):
    st.session_state["ex_bar"] = clicked[0]  # a click on the chart picks the bar below
shown = st.selectbox(
    "Events behind a bar (or click one)", [None, *range(len(bars))], key="ex_bar",
    format_func=lambda i: "-" if i is None else " · ".join(
        str(x) for x in (_format.when(bars[i].period) if step is ex.Step.HOUR else bars[i].period,
                         bars[i].group, bars[i].subgroup) if x),
)  # fmt: skip
if shown is not None:
    events, count = _session.cached(ex.bar_events, viewer, question, bars[shown], account_id=scope)
    st.caption(f"{count:,} event(s); the latest {len(events):,}:")
    _session.table(events.to_dict("records"))
