"""Chats: a searchable table of the account's chats; one chat's requests with the
explanation of each charge. `?chat=ID` opens a chat of the viewer's account."""

import streamlit as st

from pages import _ui
from pricing_core import analytics

viewer = _ui.principal()
chat_id = st.query_params.get("chat")

if chat_id:
    page = st.session_state.get("chat_page", 1)
    detail = _ui.cached(analytics.chat_detail, viewer, chat_id, page=page)
    if st.button("All chats", icon=":material/arrow_back:"):
        st.query_params.pop("chat", None)
        st.session_state["chat_page"] = 1
        st.rerun()
    if detail is None:
        st.title("Chat not found")
        st.warning("Chat not found. It may have been removed, or the link is wrong.")
        st.stop()
    st.title(detail.title)
    st.caption(f"Chat {detail.chat_id} · {_ui.when(detail.first_at)} to {_ui.when(detail.last_at)}")
    a, b, c = st.columns(3)
    a.metric("Cost", _ui.usd_small(detail.cost), border=True)
    b.metric("Requests", _ui.tokens(detail.requests_count), border=True)
    c.metric("Tokens", _ui.tokens(detail.tokens), border=True)
    st.subheader("Requests, oldest first")
    if detail.pages > 1:
        first, last = detail.shown
        left, right = st.columns([3, 1])
        left.caption(f"Requests {first:,} to {last:,} of {detail.requests_count:,}.")
        right.number_input("Page", min_value=1, max_value=detail.pages, key="chat_page")
    _ui.requests_table(detail.requests)
    st.stop()

st.title("Chats")
search = st.text_input("Search", placeholder="Chat title or id", key="chat_search")
table = _ui.cached(analytics.list_chats, viewer, search=search)
if table.empty:
    if search:
        st.info(f"No chat matches {search!r}.")
    else:
        st.info(
            "No chats yet. Each conversation with your AI app appears here with what it cost.",
            icon=":material/forum:",
        )
    st.stop()

st.caption(f"{len(table):,} chats. Click a row, or pick a chat below, to see its requests.")
picked = st.dataframe(
    _ui.chats_frame(table),
    hide_index=True,
    width="stretch",
    column_config=_ui.chat_columns(table),
    on_select="rerun",
    selection_mode="single-row",
    key="chat_table",
)
rows = picked.selection.rows if picked is not None else []
choice = st.selectbox(
    "Open a chat",
    table["chat_id"].tolist(),
    index=None,
    format_func=dict(zip(table["chat_id"], table["title"], strict=True)).get,
    placeholder="Choose a chat",
)
if rows:
    choice = table["chat_id"].iloc[rows[0]]
if choice:
    st.query_params["chat"] = choice
    st.session_state["chat_page"] = 1
    st.rerun()
