"""The README's Python example runs as written against a fresh database."""

import re
from decimal import Decimal
from pathlib import Path

from pricing_core.config import get_settings
from pricing_core.ledger.wallets import create_account

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_example_records_a_charge(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRICING_DATABASE_URL", f"sqlite:///{tmp_path / 'readme.db'}")
    get_settings.cache_clear()
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    from pricing_core import open_database

    create_account(open_database(), "acme", name="Acme", opening_credit=Decimal(5))
    exec(compile(example, "README.md", "exec"), {})
    price, balance_after, *_ = capsys.readouterr().out.split()
    assert Decimal(price) > 0 and Decimal(balance_after) == Decimal(5) - Decimal(price)
