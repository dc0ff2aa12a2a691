import streamlit as st

from pages import _session, _truth

viewer = _session.admin_principal()
st.title("Pricing truth")
if done := st.session_state.pop(_truth.DONE, None):
    st.success(done)
models, catalog, corrections, bills = st.tabs(
    ["Custom models", "Catalog", "Corrections", "Provider bills"]
)
with models:
    _truth.custom_models(viewer)
with catalog:
    _truth.catalog_file(viewer)
with corrections:
    _truth.corrections(viewer)
with bills:
    _truth.provider_bills(viewer)
