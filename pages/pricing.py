import streamlit as st

from pages import _format, _session
from pricing_core.analytics.public_prices import price_list
from pricing_core.config import get_settings
from pricing_core.domain.errors import PricingError
from pricing_core.metering.estimate import estimate_cost

viewer = _session.principal()
engine = _session.engine()
unit = get_settings().display_unit
st.title("Pricing")
prices = _session.cached(price_list, viewer)
if unit.credits:
    st.caption(
        f"Amounts in credits: {unit.per_dollar()}. Packs are paid in USD; "
        "credits are exact in your balance, and shown rounded to "
        f"{unit.decimals} places."
    )

st.subheader("Fixed prices")
st.caption("Images, edits and videos cost a fixed price per unit, not tokens.")
_session.table(
    [
        {
            "Operation": f.operation,
            "Model or style": f.model or "any other",
            "Price per unit": _format.amount(f.price),
        }
        for f in prices.fixed
    ],
    empty="No fixed prices yet: every call is priced by its tokens.",
)

st.subheader("Token prices")
st.caption("Chat and code calls cost their tokens, per million tokens (MTok).")
_session.table(
    [
        {
            "Model": f"{m.provider}/{m.model}",
            "Input": unit.rate(m.rates.input_mtok, "MTok"),
            "Output": unit.rate(m.rates.output_mtok, "MTok"),
            "Cached input": "-"
            if m.rates.cache_read_mtok is None
            else unit.rate(m.rates.cache_read_mtok, "MTok"),
        }
        for m in prices.models
    ],
    empty="No model has been used yet.",
)

st.subheader("Credit packs")
_session.table(
    [
        {
            "Pack": o.package.name + (" (most popular)" if o.package.popular else ""),
            "Price": _format.paid(o.package.price),
            "Credit": _format.amount(o.package.total_credit),
            "Per unit": _format.rate(o.per_unit, "credit" if unit.credits else "$1 of credit"),
            "Saving": f"{o.saving_pct}%" if o.saving_pct else "",
        }
        for o in prices.packs
    ],
    empty="No credit packs are on sale.",
)

st.subheader("Plans")
_session.table(
    [
        {
            "Plan": p.name,
            "Monthly fee": "talk to us" if p.monthly_fee is None else _format.amount(p.monthly_fee),
            "Included messages": "unlimited"
            if p.included_messages is None
            else f"{p.included_messages:,}",
            "Overage": unit.rate(p.overage_rate, "message"),
            "Monthly cap": "-" if p.monthly_cap is None else _format.amount(p.monthly_cap),
        }
        for p in prices.plans
    ],
    empty="No plans are on offer.",
)

st.subheader("What will a call cost?")
choices = {f.model: (None, f.model) for f in prices.fixed if f.model}
choices |= {f"{m.provider}/{m.model}": (m.provider, m.model) for m in prices.models}
operations = sorted({f.operation for f in prices.fixed} | {"chat_message", "code_completion"})
with st.form("calculator"):
    c1, c2 = st.columns(2)
    chosen = c1.selectbox("Model or style", list(choices), key="calc_model")
    operation = c2.selectbox("Operation", operations, key="calc_operation")
    by = st.radio("Input", ["Tokens", "A prompt"], horizontal=True, key="calc_by")
    prompt = st.text_area("Prompt (counted in tokens)", key="calc_prompt")
    c3, c4, c5 = st.columns(3)
    input_tokens = c3.number_input("Input tokens", 0, 10_000_000, 1_000, key="calc_in")
    output_tokens = c4.number_input("Output tokens", 0, 10_000_000, 500, key="calc_out")
    quantity = c5.number_input("Quantity (images, videos)", 1, 10_000, 1, key="calc_qty")
    asked = st.form_submit_button("Calculate", key="calc_go")
if asked and chosen is None:
    st.info("No model is priced yet.")
elif asked:
    provider, model = choices[chosen]
    try:
        estimate = estimate_cost(
            engine, model=model, provider=provider, operation=operation,
            max_output_tokens=int(output_tokens),
            prompt_text=prompt if by == "A prompt" else None,
            prompt_tokens=None if by == "A prompt" else int(input_tokens),
            quantity=int(quantity),
        )  # fmt: skip
    except PricingError as exc:
        st.error(str(exc))
    else:
        st.metric("Cost", _format.amount(estimate.price), border=True)
        st.caption(estimate.explanation)
