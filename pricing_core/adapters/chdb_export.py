"""The worker process behind `warehouse.SqliteExport`: stateless chdb runs one
statement per line of stdin (JSON, {"sql": ...}) and answers one line, "ok" or
"error: <ClickHouse's first line>". A process of its own: a second SQLite library
inside the app's process would release the app's locks on the file it reads."""

from __future__ import annotations

import json
import sys


def main() -> None:
    import chdb  # optional dependency

    for line in sys.stdin:
        try:
            chdb.query(json.loads(line)["sql"])
            answer = "ok"
        except RuntimeError as exc:  # chdb's errors
            answer = "error: " + (str(exc).splitlines() or ["failed"])[0]
        print(answer, flush=True)


if __name__ == "__main__":
    main()
