"""Speed and size guards of the input paths (run by ``bench/run.py``).

* ``peakscale promo import`` of 1,000 and 10,000 CSV rows into an empty calendar file, in process:
  the 10k/1k time ratio shows whether the import is linear (about 10) or quadratic (about 100);
* a 1 MB YAML alias bomb given to ``peakscale promo import``: refused (exit 2, one line) long
  before it could expand; budget under 1 s.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from autoscaler.cli import app


def _promo_csv(path: Path, rows: int) -> None:
    start = datetime(2027, 1, 1, 20, 0)
    lines = ["start,end,name,kind"]
    for i in range(rows):
        at = start + timedelta(hours=3 * i)
        lines.append(f"{at:%Y-%m-%d %H:%M},{at + timedelta(hours=1):%Y-%m-%d %H:%M},host {i},live show")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _alias_bomb(path: Path, size: int = 1024 * 1024) -> None:
    """The classic billion-laughs shape, padded to ``size`` bytes of YAML."""
    levels = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    for n in range(1, 9):
        levels.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    body = "\n".join(levels) + "\n"
    filler = "# " + "x" * 76 + "\n"
    body += filler * max(0, (size - len(body)) // len(filler))
    path.write_text(body, encoding="utf-8")


def _timed(runner: CliRunner, args: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = runner.invoke(app, args)
    return time.perf_counter() - started, result.exit_code, (result.output or "").strip()


def run(console: Console) -> None:
    runner = CliRunner()
    table = Table(title="input guards: promo import speed, alias-bomb refusal", title_justify="left")
    for col in ("case", "input", "exit", "seconds", "budget"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="peakscale-bench-") as tmp:
        folder = Path(tmp)
        seconds = {}
        for rows in (1_000, 10_000):
            source = folder / f"promos-{rows}.csv"
            _promo_csv(source, rows)
            store = folder / f"calendar-{rows}.yaml"
            took, code, out = _timed(runner, ["promo", "import", str(source), "--tz", "UTC", "--calendar", str(store), "-q"])
            if code != 0:
                raise SystemExit(f"promo import of {rows} rows failed: {out}")
            seconds[rows] = took
            table.add_row("promo import", f"{rows:,} CSV rows", f"{code}", f"{took:.2f}", "")
        ratio = seconds[10_000] / seconds[1_000]
        table.add_row("promo import 10k / 1k", "", "", f"ratio {ratio:.1f}", "ratio <= 15 (linear)")
        bomb = folder / "bomb.yaml"
        _alias_bomb(bomb)
        took, code, out = _timed(runner, ["promo", "import", str(bomb), "--calendar", str(folder / "bomb-store.yaml")])
        if code != 2:
            raise SystemExit(f"the alias bomb was not refused with exit 2: {code} {out[:200]}")
        table.add_row("YAML alias bomb", f"{bomb.stat().st_size / 1e6:.2f} MB", f"{code}", f"{took:.4f}", "< 1 s")
    console.print(table)
