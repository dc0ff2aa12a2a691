"""Chats: a searchable table of the account's chats; one chat's requests with the
explanation of each charge. `?chat=ID` opens a chat of the viewer's account."""

import pandas as pd
import streamlit as st

from pages import _format, _session
from pricing_core import analytics


def requests_table(requests: pd.DataFrame) -> None:
    """A chat's requests as a static table, so the explanation of each charge wraps
    instead of being cut off."""
    frame = pd.DataFrame(
        {
            "Time": [_format.when(t) for t in requests["created_at"]],
            "Model": requests["model"],
            "Operation": requests["operation"],
            "Input tokens": requests["input_tokens"],
            "Output tokens": requests["output_tokens"],
            "Cost": [_format.amount(v) for v in requests["cost"]],
            "How it was charged": requests["explanation"],
        }
    )
    right = ["Input tokens", "Output tokens", "Cost"]
    styled = (
        frame.style.hide(axis="index")
        .format({"Input tokens": _format.tokens, "Output tokens": _format.tokens})
        .set_properties(subset=right, **{"text-align": "right", "white-space": "nowrap"})
        .set_properties(subset=["Time", "Model", "Operation"], **{"white-space": "nowrap"})
    )
    st.table(styled)


CHATS_SHOWN = 100  # chats listed at first, and added by "Show more"

viewer = _session.principal()
chat_id = st.query_params.get("chat")

if chat_id and st.button("All chats", icon=":material/arrow_back:"):
    # no st.rerun(): the list renders in this same run, which also sends the URL
    # without `chat` (a rerun would drop that change and leave `chat=` in the URL)
    st.query_params.pop("chat", None)
    st.session_state["chat_page"] = 1
    chat_id = None
if chat_id:
    page = st.session_state.get("chat_page", 1)
    detail = _session.cached(analytics.chat_detail, viewer, chat_id, page=page)
    if detail is None:
        st.title("Chat not found")
        st.warning("Chat not found. It may have been removed, or the link is wrong.")
        st.stop()
    st.title(detail.title)
    st.caption(
        f"Chat {detail.chat_id} · {_format.when(detail.first_at)} to {_format.when(detail.last_at)}"
    )
    a, b, c = st.columns(3)
    a.metric("Cost", _format.amount(detail.cost), border=True)
    b.metric("Requests", _format.tokens(detail.requests_count), border=True)
    c.metric("Tokens", _format.tokens(detail.tokens), border=True)
    st.subheader("Requests, oldest first")
    if detail.pages > 1:
        first, last = detail.shown
        left, right = st.columns([3, 1])
        left.caption(f"Requests {first:,} to {last:,} of {detail.requests_count:,}.")
        right.number_input("Page", min_value=1, max_value=detail.pages, key="chat_page")
    requests_table(detail.requests)
    first_day, last_day = detail.first_at.date(), detail.last_at.date()  # local days
    st.download_button(
        "Download this chat's requests (CSV)",
        data=lambda: analytics.usage_events_csv(
            _session.engine(), viewer, start=first_day, end=last_day, chat_id=detail.chat_id
        ),
        file_name=f"chat_{detail.chat_id}.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    st.stop()

st.title("Chats")
search = st.text_input("Search", placeholder="Chat title or id", key="chat_search")
shown = st.session_state.get("chats_shown", CHATS_SHOWN)
table = _session.cached(analytics.list_chats, viewer, search=search, limit=shown)
if table.empty:
    if search:
        st.info(f"No chat matches {search!r}.")
    else:
        st.info(
            "No chats yet. Each conversation with your AI app appears here with what it cost.",
            icon=":material/forum:",
        )
    st.stop()

total = _session.cached(analytics.count_chats, viewer, search=search)
listed = (
    f"{total:,} chats" if total == len(table) else f"The {len(table):,} latest of {total:,} chats"
)
st.caption(f"{listed}. Click a row, or pick a chat below, to see its requests.")
# The row selection and the picker keep their value as widget state; new keys each
# time a chat is opened, so coming back to the list (All chats, Back, the sidebar)
# does not open the same chat again.
generation = st.session_state.get("chat_list_generation", 0)
picked = st.dataframe(
    _format.chats_frame(table),
    hide_index=True,
    width="stretch",
    column_config=_format.chat_columns(table),
    on_select="rerun",
    selection_mode="single-row",
    key=f"chat_table_{generation}",
)
rows = picked.selection.rows if picked is not None else []
choice = st.selectbox(
    "Open a chat",
    table["chat_id"].tolist(),
    index=None,
    format_func=dict(zip(table["chat_id"], table["title"], strict=True)).get,
    placeholder="Choose a chat",
    key=f"chat_pick_{generation}",
)
if total > len(table) and st.button(f"Show {CHATS_SHOWN} more", icon=":material/expand_more:"):
    st.session_state["chats_shown"] = shown + CHATS_SHOWN
    st.rerun()
if rows:
    choice = table["chat_id"].iloc[rows[0]]
if choice:
    st.query_params["chat"] = choice
    st.session_state["chat_page"] = 1
    st.session_state["chat_list_generation"] = generation + 1
    st.rerun()
