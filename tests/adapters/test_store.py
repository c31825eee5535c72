"""The promotion calendar file: concurrent writers, symlinks, modes and comments."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, UTC

import pytest
import yaml

from autoscaler.errors import InputError
from autoscaler.adapters.store import FileStore, Promo

SPEC = {"start": "2026-11-11T20:00:00+08:00", "end": "2026-11-11T22:00:00+08:00", "kind": "kol-live"}


#: a day that is always ahead of the clock, so no add needs --allow-past
FUTURE_DAY = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")


def add(calendar, name: str, start_hour: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "promo", "add", name, "--start", f"{FUTURE_DAY} {start_hour:02d}:00", "--duration", "1h", "--kind", f"k{start_hour}", "--calendar", str(calendar), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_twenty_concurrent_adds_all_land(tmp_path):
    calendar = tmp_path / "calendar.yaml"
    with ThreadPoolExecutor(max_workers=20) as pool:
        done = list(pool.map(lambda k: add(calendar, f"promo-{k}", k), range(20)))
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done if d.returncode]
    stored = yaml.safe_load(calendar.read_text())["events"]
    assert sorted(e["name"] for e in stored) == sorted(f"promo-{k}" for k in range(20))


def test_a_write_keeps_the_symlink_the_mode_comments_and_other_keys(tmp_path):
    real = tmp_path / "shared" / "calendar.yaml"
    real.parent.mkdir()
    real.write_text(
        "# the live team's promotions: ask #live-ops before editing\n"
        "owner: live-ops\n"
        "events:\n"
        "  # last year's, kept for memory\n"
        "  - name: d11-2025\n"
        "    start: '2025-11-11T00:00:00+08:00'\n"
        "    end: '2025-11-11T02:00:00+08:00'\n"
        "    kind: double11  # the big one\n"
    )
    os.chmod(real, 0o640)
    link = tmp_path / "calendar.yaml"
    link.symlink_to(real)
    store = FileStore(link)
    promos = store.promos() + [Promo(name="d11-2026", spec={**SPEC, "kind": "double11", "like": ["d11-2025"]})]
    store.save(promos, changed=["d11-2026"], deleted=[], created=["d11-2026"])
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    text = real.read_text()
    assert "# the live team's promotions: ask #live-ops before editing" in text
    assert "# last year's, kept for memory" in text and "# the big one" in text
    assert "owner: live-ops" in text
    assert [p.name for p in store.promos()] == ["d11-2025", "d11-2026"]


def test_a_name_added_meanwhile_is_not_overwritten(tmp_path):
    store = FileStore(tmp_path / "c.yaml")
    store.save([Promo("a", SPEC)], changed=["a"], deleted=[], created=["a"])
    with pytest.raises(InputError, match="added meanwhile"):
        store.save([Promo("a", {**SPEC, "kind": "other"})], changed=["a"], deleted=[], created=["a"])
    assert store.promos()[0].spec["kind"] == "kol-live"


def test_a_typo_in_a_key_is_refused_with_the_nearest_known_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("events:\n  - name: a\n    sart: 2026-11-11T20:00:00+08:00\n    end: 2026-11-11T22:00:00+08:00\n    kind: k\n")
    with pytest.raises(InputError) as info:
        FileStore(path).promos()
    assert "sart: unknown key" in str(info.value) and "did you mean 'start'?" in str(info.value)
    path.write_text("evnets: []\n")
    with pytest.raises(InputError, match="did you mean 'events'"):
        FileStore(path).promos()


def test_a_promotion_changed_since_it_was_read_is_not_written_over(tmp_path):
    from autoscaler.errors import StoreConflict

    store = FileStore(tmp_path / "calendar.yaml")
    store.save([Promo("sale", dict(SPEC))], changed=["sale"], deleted=[], created=["sale"])
    mine = store.promos()[0]
    theirs = Promo("sale", {**SPEC, "title": "Theirs"}).replacing(store.promos()[0])
    store.save([theirs], changed=["sale"], deleted=[])
    with pytest.raises(StoreConflict):
        store.save([Promo("sale", {**SPEC, "expectedMultiplier": 3}).replacing(mine)], changed=["sale"], deleted=[])
    with pytest.raises(StoreConflict):
        store.save([mine], changed=[], deleted=["sale"])
    assert store.promos()[0].spec["title"] == "Theirs"


def test_concurrent_edits_of_one_promotion_all_land(tmp_path):
    calendar = tmp_path / "calendar.yaml"
    assert add(calendar, "sale", 20).returncode == 0
    edits = [["--title", "Night sale"], ["--multiplier", "7"], ["--duration", "3h"]]

    def edit(args: list[str]) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "autoscaler.cli", "promo", "edit", "sale", *args, "--calendar", str(calendar), "-q"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(edit, edits))
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    entry = yaml.safe_load(calendar.read_text())["events"][0]
    assert entry["title"] == "Night sale" and entry["expectedMultiplier"] == 7 and entry["end"].endswith("23:00:00+08:00")
