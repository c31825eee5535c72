"""The plots: the backtest (replicas needed against each strategy's ready replicas, the shortfall
shaded, the whole trace and one small panel per strategy over the busiest calendar event) and the
cost/coverage frontier of ``backtest --sweep``. PNGs from matplotlib's headless Agg backend; never
opens a window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.core.backtest import BacktestResult
from autoscaler.core.frontier import Frontier
from autoscaler.errors import InputError
from autoscaler.core.timezones import wall_datetime

COLOURS = {
    "reactive": "#d62728",
    "schedule": "#9467bd",
    "history": "#ff7f0e",
    "peakscale": "#1f77b4",
    "oracle": "#2ca02c",
}


def _bucket_max(x: np.ndarray, width: int) -> np.ndarray:
    n = len(x) // width * width
    head = x[:n].reshape(-1, width).max(axis=1)
    return np.concatenate([head, [x[n:].max()]]) if n < len(x) else head


def _dates(times_s: np.ndarray) -> np.ndarray:
    return np.array([wall_datetime(t) for t in times_s])


def _save(fig: Any, path: Path, dpi: int) -> None:
    """Write the figure as a PNG (an unwritable path is the --plot option's error) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise InputError("--plot", f"cannot write {str(path)!r} ({exc.strerror or exc})", "give a writable path") from None
    finally:
        plt.close(fig)


def _busiest(result: BacktestResult) -> tuple[int, int, str]:
    """The close-up's slice: the calendar event with the highest demand (a surge, not a season: events
    of a day or less preferred), padded; else the busiest moment."""
    if result.events:
        short = [e for e in result.events if e.end_s - e.start_s <= 86400] or result.events
        peaks = []
        for event in short:
            lo, hi = np.searchsorted(result.times_s, [event.start_s, event.end_s])
            peaks.append(float(np.nanmax(result.demand[lo:hi])) if hi > lo and np.isfinite(result.demand[lo:hi]).any() else -1.0)
        busiest = short[int(np.argmax(peaks))]
        pad = max(2 * result.scenario.policy.lead_time_s, 3600)
        lo, hi = np.searchsorted(result.times_s, [busiest.start_s - pad, busiest.end_s + pad])
        return int(lo), int(hi), f"{busiest.label} (the busiest calendar event)"
    centre = int(np.nanargmax(result.demand))
    span = max(1, 6 * 3600 // result.step_s)
    return max(0, centre - span), min(len(result.demand), centre + span), "the busiest moment"


def plot_backtest(result: BacktestResult, path: Path) -> None:
    """Replicas, not demand units: the replicas the demand needs at full capacity (grey) against
    each strategy's ready replicas, the shortfall (demand above ready capacity) shaded red. On top
    the whole trace (hourly peaks) for peakscale and the hand schedule; below, one small panel per
    strategy over the busiest calendar event, on one scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    cap = result.scenario.policy.capacity_per_replica
    needed = result.demand / cap
    shown = [n for n in result.runs if n != "oracle"] or list(result.runs)
    fig = plt.figure(figsize=(14, 4 + 2.6 * len(shown)))
    grid = fig.add_gridspec(1 + len(shown), 1, height_ratios=[1.4] + [1.0] * len(shown))
    top = fig.add_subplot(grid[0])
    width = max(1, 3600 // result.step_s)
    t_over = _dates(result.times_s[::width][: len(_bucket_max(needed, width))])
    top.fill_between(t_over, _bucket_max(needed, width), step="post", color="0.75", label="replicas the demand needs (hourly peak)")
    for over in (n for n in ("schedule", "peakscale") if n in result.runs):
        top.step(t_over, _bucket_max(result.runs[over].ready.astype(float), width), where="post", lw=0.9, color=COLOURS.get(over), label=f"{over}: ready replicas")
    for event in result.events:
        top.axvspan(wall_datetime(event.start_s), wall_datetime(event.end_s), color="gold", alpha=0.25, lw=0)
    top.set_title(f"{result.trace.name}: replicas needed and ready (calendar windows shaded)")
    top.set_ylabel("replicas")
    top.legend(loc="upper left", fontsize=8, ncol=3)
    top.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    lo, hi, what = _busiest(result)
    t_zoom = _dates(result.times_s[lo:hi])
    ceiling = max(float(np.nanmax(needed[lo:hi])) if np.isfinite(needed[lo:hi]).any() else 1.0, *(float(result.runs[n].ready[lo:hi].max()) for n in shown)) * 1.05
    for k, name in enumerate(shown):
        ax = fig.add_subplot(grid[1 + k], sharex=None if k == 0 else fig.axes[1])
        ready = result.runs[name].ready[lo:hi].astype(float)
        ax.fill_between(t_zoom, needed[lo:hi], step="post", color="0.8", label="needed")
        ax.fill_between(t_zoom, ready, needed[lo:hi], where=needed[lo:hi] > ready, step="post", color="#d62728", alpha=0.6, label="short: demand above ready capacity")
        ax.step(t_zoom, ready, where="post", lw=1.4, color=COLOURS.get(name, "black"), label=f"{name}: ready")
        for event in result.events:
            if event.end_s >= result.times_s[lo] and event.start_s <= result.times_s[hi - 1]:
                ax.axvspan(wall_datetime(event.start_s), wall_datetime(event.end_s), color="gold", alpha=0.2, lw=0)
        figs = result.runs[name].events
        ax.set_title(f"{name}" + (f": {figs.unserved_fraction:.3%} of event demand unserved over the trace" if figs is not None else ""), fontsize=9, loc="left")
        ax.set_ylim(0, ceiling)
        ax.set_ylabel("replicas")
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.axes[1].annotate(f"close-up: {what}", xy=(1.0, 1.02), xycoords="axes fraction", ha="right", fontsize=9)
    _save(fig, path, 100)


def plot_frontier(frontier: Frontier, name: str, path: Path) -> None:
    """Replica-hours (whole trace) against the share of event demand unserved, log scale, one line
    per strategy through its knob's points: the cheaper and the better-served, the lower left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    floor = min((p.unserved_events for p in frontier.points if p.unserved_events > 0), default=1e-6) / 2
    for strategy in dict.fromkeys(p.strategy for p in frontier.points):
        mine = sorted((p for p in frontier.points if p.strategy == strategy), key=lambda p: p.replica_hours)
        xs = [p.replica_hours for p in mine]
        ys = [max(p.unserved_events, floor) for p in mine]
        ax.plot(xs, ys, marker="o", lw=2.0 if strategy == "peakscale" else 1.2, color=COLOURS.get(strategy), label=f"{strategy} ({mine[0].knob.replace('_', ' ')})")
        for p, x, y in zip(mine, xs, ys):
            ax.annotate(f"{p.value:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=COLOURS.get(strategy))
    ax.set_yscale("log")
    ax.set_xlabel("replica-hours, whole trace")
    ax.set_ylabel(f"unserved share of event demand (log; 0 drawn at {floor:.1e})")
    ax.set_title(f"{name}: cost against event coverage, each strategy across its knob")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, 110)
