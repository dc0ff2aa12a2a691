"""The documented API is importable from the package itself, and nothing else is."""

import inspect

import pricing_core
from pricing_core.metering import authorize, batch, record, settle


def test_every_name_in_all_is_exported():
    assert all(hasattr(pricing_core, name) for name in pricing_core.__all__)


def test_the_package_exports_the_functions_the_readme_documents():
    documented = {
        "record_usage": record.record_usage,
        "record_usage_batch": batch.record_usage_batch,
        "authorize": authorize.authorize,
        "settle": settle.settle,
    }
    for name, function in documented.items():
        assert getattr(pricing_core, name) is function, name


def test_every_exported_error_is_a_pricing_error():
    errors = [
        getattr(pricing_core, n)
        for n in pricing_core.__all__
        if inspect.isclass(getattr(pricing_core, n))
        and issubclass(getattr(pricing_core, n), Exception)
    ]
    assert errors and all(issubclass(e, pricing_core.PricingError) for e in errors)
