"""How long the command line takes to answer: ``--version``, ``--help`` and ``promo list --store
file``, each a fresh ``python -m autoscaler.cli`` process, against ``python -c pass`` (the floor
of any Python command). The budget (issue 21): under 0.4 s on a quiet machine, about 15 times the
floor; the table gives the medians and the ratio. Measured as an installed CLI runs: with bytecode
(the Makefile installs the dependencies compiled; a first, unmeasured run of each command writes
the rest, as a user's first run does)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RUNS = 7


def _median_s(args: list[str], env: dict[str, str]) -> float:
    times = []
    subprocess.run([sys.executable, *args], env=env, capture_output=True, check=True)  # writes the bytecode
    for _ in range(RUNS):
        began = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(console: Console) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        calendar = Path(tmp) / "calendar.yaml"
        calendar.write_text("events:\n  - {name: d11, start: '2031-11-11T20:00:00+08:00', end: '2031-11-12T00:00:00+08:00', kind: double11}\n")
        env = {**os.environ, "HOME": tmp, "KUBECONFIG": str(Path(tmp) / "none")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        floor = _median_s(["-c", "pass"], env)
        table = Table(title=f"CLI start (median of {RUNS} fresh processes; python -c pass: {floor * 1000:.0f} ms)", title_justify="left")
        for col in ("command", "ms", "x python -c pass"):
            table.add_column(col)
        for label, args in (
            ("peakscale --version", ["--version"]),
            ("peakscale --help", ["--help"]),
            ("peakscale promo list --store file", ["promo", "list", "--store", "file", "--calendar", str(calendar)]),
        ):
            took = _median_s(["-m", "autoscaler.cli", *args], env)
            table.add_row(label, f"{took * 1000:.0f}", f"{took / floor:.1f}")
    console.print(table)
