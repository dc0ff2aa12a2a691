"""The Pricing truth page's sections (custom models, the catalog, corrections,
provider bills): widgets only; every figure comes from `pricing_core.admin`."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import streamlit as st

from pages import _charts, _format, _session
from pricing_core.admin import catalog
from pricing_core.admin.prices import propose_price
from pricing_core.admin.provider_bills import BillFormat, import_bill, reconcile
from pricing_core.admin.reprice import apply_reprice, reprice_preview
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.domain.periods import local_moment
from pricing_core.domain.principal import Principal
from pricing_core.domain.usage_event import SERVICE_TIERS


def _done(message: str) -> None:
    """Show `message` above fresh figures: rerun, so tables drawn above see the change."""
    _session.clear_cached()
    st.session_state[DONE] = message
    st.rerun()


DONE = "truth_done"


def custom_models(viewer: Principal) -> None:
    engine = _session.engine()
    st.caption(
        "A model the catalog lacks, at the provider's rates (USD per million tokens). "
        "It prices before the catalog, from its start on; the markup applies as usual."
    )
    rows = catalog.custom_model_list(engine, viewer)
    if not rows:
        st.caption("No custom model yet: the catalog prices every model.")
    else:
        _session.table(
            [
                {
                    "model": f"{m.provider}/{m.model}",
                    "tier": m.service_tier,
                    "from": _format.when(m.effective_from, seconds=True),
                    "input $/MTok": m.input_mtok,
                    "output $/MTok": m.output_mtok,
                    "cache read": m.cache_read_mtok or "",
                    "cache write": m.cache_write_mtok or "",
                    "context tiers": m.tiers,
                    "by": m.actor or "",
                    "reason": m.reason or "",
                }  # fmt: skip
                for m in rows
            ]
        )
    with st.form("custom_model"):
        c = st.columns(4)
        provider = c[0].text_input("Provider", key="cm_provider")
        model = c[1].text_input("Model", key="cm_model")
        tier = c[2].selectbox("Service tier", SERVICE_TIERS)
        start = c[3].date_input("From (today = now)", value=_session.today())
        r = st.columns(4)
        labels = ("Input $/MTok", "Output $/MTok", "Cache read $/MTok", "Cache write $/MTok")
        rates = [r[i].text_input(x, key=f"cm_rate{i}") for i, x in enumerate(labels)]
        t = st.columns(3)
        tier_start = t[0].number_input("Context tier from (tokens, 0 = none)", 0, step=1000)
        tier_in, tier_out = t[1].text_input("Tier input $/MTok"), t[2].text_input("Tier output")
        reason = st.text_input("Reason (required)", key="cm_reason")
        saved = st.form_submit_button("Add the model", type="primary")
    if saved:
        past = start < _session.today()
        try:
            catalog.add_custom_model(
                engine, viewer, provider.strip(), model.strip(), input_mtok=rates[0],
                output_mtok=rates[1], cache_read_mtok=rates[2], cache_write_mtok=rates[3],
                tiers=[(int(tier_start), tier_in, tier_out)] if tier_start else [],
                service_tier=tier, reason=reason, allow_retroactive=past,
                effective_from=local_moment(start, time(0), get_settings().tz)
                if start != _session.today() else None,
            )  # fmt: skip
        except PricingError as exc:
            st.error(str(exc))
        else:
            when = "now" if start == _session.today() else start.isoformat()
            _done(f"{provider}/{model} is priced from {when} on; queued usage can be priced below.")
    status = catalog.catalog_status(engine, viewer)
    st.markdown(f"**Unpriced usage queue:** {status.unpriced:,} event(s).")
    if status.unpriced and st.button("Price the queued usage now"):
        with st.spinner("Pricing the queued events..."):
            result = catalog.price_unpriced(engine, viewer)
        _done(
            f"Priced {result.priced:,} event(s) for {_format.amount(result.amount)}; "
            f"{result.still_unpriced:,} still unknown."
        )


def catalog_file(viewer: Principal) -> None:
    engine = _session.engine()
    status = catalog.catalog_status(engine, viewer)
    if status.loaded_at is None:
        st.info("Prices come from the genai-prices snapshot bundled with this release.")
    else:
        st.caption(
            f"In use: {status.source} ({status.models:,} models, sha256 "
            f"{(status.sha256 or '')[:12]}), loaded {_format.when(status.loaded_at)}."
        )
    upload = st.file_uploader("A newer genai-prices data.json", type=["json"])
    if upload is None:
        return
    text = upload.getvalue().decode("utf-8", errors="replace")
    try:
        checked = catalog.check_catalog_file(text)
    except PricingError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**{checked.models:,} models; {len(checked.diff):,} differ from the catalog.**")
    _session.table([{"change": d.change, "model": f"{d.provider}/{d.model}",
                     "before $/MTok (in / out)": _pair(d.before),
                     "after $/MTok (in / out)": _pair(d.after)} for d in checked.diff])  # fmt: skip
    if st.button("Load this catalog", type="primary"):
        catalog.load_catalog_file(engine, viewer, text, source=upload.name)
        _done("Loaded: every process prices with it from its next price-book refresh.")


def _pair(rates: Any) -> str:
    return "-" if rates is None else " / ".join("-" if r is None else str(r) for r in rates)


def corrections(viewer: Principal) -> None:
    st.caption(
        "Correct the last days' pay-as-you-go charges of a model to the right price: one "
        "ledger entry per event for the difference, posted today. Charges are never edited."
    )
    with st.form("correction"):
        c = st.columns(4)
        provider, model = c[0].text_input("Provider", "openai"), c[1].text_input("Model")
        markup, days = (
            c[2].text_input("Correct markup", "1.25"),
            c[3].number_input("Days", 1, 366, 30),
        )
        reason = st.text_input("Reason (required)")
        previewed = st.form_submit_button("Preview")
    if previewed:
        try:
            change = propose_price(provider.strip(), model.strip(), markup=markup)
            preview = reprice_preview(_session.engine(), viewer, [change], days=int(days))
        except PricingError as exc:
            st.error(str(exc))
        else:
            st.session_state["correction"] = (change, int(days), reason, preview)
    pending = st.session_state.get("correction")
    if pending:
        change, days, reason, preview = pending
        _session.table(_format.preview_rows(preview))
        if st.button("Post the corrections", type="primary"):
            try:
                done = apply_reprice(_session.engine(), viewer, [change], reason=reason, days=days)
            except PricingError as exc:
                st.error(str(exc))
            else:
                del st.session_state["correction"]
                _done(f"{done.events:,} charge(s) corrected by {_format.amount(done.amount)}.")


def provider_bills(viewer: Principal) -> None:
    engine = _session.engine()
    c = st.columns(3)
    fmt = BillFormat(c[0].selectbox("Format", [f.value for f in BillFormat]))
    provider = c[1].text_input("Provider", "" if fmt is BillFormat.CSV else fmt.value)
    tolerance = c[2].number_input("Flag days off by more than (%)", 0.0, 100.0, 2.0, 0.5)
    upload = st.file_uploader("The provider's cost export (JSON, or CSV date,model,cost_usd)")
    if upload is not None and st.button("Import the bill", type="primary"):
        try:
            rows = import_bill(engine, viewer, provider.strip(), fmt,
                               upload.getvalue().decode("utf-8"), source=upload.name)  # fmt: skip
        except (PricingError, UnicodeDecodeError) as exc:
            st.error(str(exc))
        else:
            _done(f"Imported {rows:,} day-and-model line(s).")
    end = _session.today()
    days, rows = reconcile(
        engine, viewer, provider.strip() or "openai", start=end - timedelta(days=90), end=end,
        tolerance_pct=tolerance,
    )  # fmt: skip
    if not days:
        st.info("No bill imported for this provider in the last 90 days.")
        return
    st.plotly_chart(_charts.drift_chart(days), key="drift_chart")
    _session.table(
        [
            {
                "day": d.day.isoformat(),
                "model": d.model or "all",
                "ours": d.ours,
                "billed": d.billed,
                "drift": d.drift,
                "drift %": d.drift_pct,
                "flag": "over tolerance" if d.flagged else "",
            }
            for d in (*days, *rows)
        ]  # fmt: skip
    )
