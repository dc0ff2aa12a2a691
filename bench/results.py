"""Measurements, the results file (`bench/results/latest.json`) and the printed table.

Figures here are performance numbers (seconds, events/s, MB), never money: plain
floats are fine. The file holds one object per measurement, keyed B1 to B6, each with
what / value / unit / baseline / baseline_unit / ratio / target / met, and at the top
level the number of events, the back end(s), the machine and the start time. Extra
figures (per back end, per page, per function) go to `bench/results/details.json`.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Measurement:
    what: str
    value: float | None
    unit: str
    baseline: float | None
    baseline_unit: str | None
    ratio: float | None
    target: str
    met: bool


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round(value / baseline, 3)


def machine() -> dict:
    """Cores, memory and CPU model of this machine."""
    memory_kb = 0
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def write(
    path: Path,
    *,
    events: int,
    backend: str,
    started_at: str,
    measurements: dict[str, Measurement],
    details: dict,
) -> None:
    """Write the results file (and details next to it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "events": events,
        "backend": backend,
        "machine": machine(),
        "started_at": started_at,
        **{key: asdict(m) for key, m in sorted(measurements.items())},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    (path.parent / "details.json").write_text(json.dumps(details, indent=2, default=str) + "\n")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def table(measurements: dict[str, Measurement]) -> str:
    """The results as a Markdown table (printed, and pasted into docs)."""
    lines = [
        "| # | what | value | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, m in sorted(measurements.items()):
        value = f"{_fmt(m.value)} {m.unit}"
        base = f"{_fmt(m.baseline)} {m.baseline_unit}" if m.baseline is not None else "-"
        rate = f"{_fmt(m.ratio)}x" if m.ratio is not None else "-"
        lines.append(
            f"| {key} | {m.what} | {value} | {base} | {rate} | {m.target} | "
            f"{'yes' if m.met else 'NO'} |"
        )
    return "\n".join(lines)
