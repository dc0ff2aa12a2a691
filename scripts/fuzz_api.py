"""Run schemathesis with every check against a live `/api/v1` on a fresh PostgreSQL
database (seeded as in the contract tests) and print its summary.

    .venv/bin/python scripts/fuzz_api.py [--max-examples 50] [extra schemathesis options]

Needs PostgreSQL (`TEST_DATABASE_URL`, default the local `test` database). Exit code:
schemathesis' own (0 when no check failed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pricing_core.adapters import storage  # noqa: E402
from tests.conftest import _admin_engine, _url_for  # noqa: E402
from tests.live_api import CONTRACT_ENV, seed, serving  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50)
    options, extra = parser.parse_known_args()
    name = f"pc_fuzz_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = _url_for(name)
    try:
        engine = storage.make_engine(url)
        storage.upgrade(engine)
        engine.dispose()
        secret = seed(url)
        with serving(url, CONTRACT_ENV) as base:
            command = [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(options.max_examples),
                "--header",
                f"Authorization: Bearer {secret}",
                "--workers",  # one: rules out races inside the generator (see the closing note)
                "1",
                "--suppress-health-check",
                "all",
                *extra,
            ]
            hooks = {**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "tests/schemathesis_hooks.py")}
            return subprocess.run(command, check=False, env=hooks).returncode
    finally:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
