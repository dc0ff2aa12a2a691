"""Numbers inside names sort as numbers (the account picker, Accounts, the CLI)."""

from hypothesis import given
from hypothesis import strategies as st

from pricing_core.domain.ordering import natural_key


def test_trace_accounts_sort_by_their_number():
    names = ["trace-user-1", "trace-user-10", "trace-user-100", "trace-user-11", "trace-user-2"]
    assert sorted(names, key=natural_key) == [
        "trace-user-1", "trace-user-2", "trace-user-10", "trace-user-11", "trace-user-100",
    ]  # fmt: skip


def test_case_is_ignored_first_and_leading_zeros_do_not_reorder_numbers():
    assert sorted(["b", "A", "a"], key=natural_key) == ["A", "a", "b"]
    assert sorted(["x010", "x9"], key=natural_key) == ["x9", "x010"]


@given(st.lists(st.text(max_size=12), max_size=20))
def test_any_names_sort_without_error_and_the_key_tells_different_names_apart(names):
    ordered = sorted(names, key=natural_key)
    assert sorted(ordered) == sorted(names)
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert natural_key(a) <= natural_key(b)
        assert (natural_key(a) == natural_key(b)) == (a == b)
