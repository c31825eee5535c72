"""The backtest plot: demand, ready capacity of each strategy, calendar windows shaded.

Two panels: the whole trace (hourly peaks, so that minute-level noise does not hide the shape)
and a close-up of the calendar event with the highest demand, where the strategies differ.
Writes a PNG with matplotlib's headless Agg backend; never opens a window.
"""

from __future__ import annotations

from pathlib import Path

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


def plot_backtest(result: BacktestResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    cap = result.scenario.policy.capacity_per_replica
    fig, (top, zoom) = plt.subplots(2, 1, figsize=(14, 9), gridspec_kw={"height_ratios": [1, 1.3]})
    width = max(1, 3600 // result.step_s)
    t_over = _dates(result.times_s[::width][: len(_bucket_max(result.demand, width))])
    top.fill_between(t_over, _bucket_max(result.demand, width), step="post", color="0.75", label="demand (hourly peak)")
    for name, run in result.runs.items():
        top.step(t_over, _bucket_max(run.ready * cap, width), where="post", lw=0.8, color=COLOURS.get(name), label=f"{name} ready capacity")
    for event in result.events:
        top.axvspan(wall_datetime(event.start_s), wall_datetime(event.end_s), color="gold", alpha=0.25, lw=0)
    top.set_title(f"{result.trace.name}: demand and ready capacity (calendar windows shaded)")
    top.set_ylabel("demand per sample")
    top.legend(loc="upper left", fontsize=8, ncol=3)
    top.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))

    if result.events:
        # the close-up wants a surge, not a season: prefer events of a day or less
        short = [e for e in result.events if e.end_s - e.start_s <= 86400] or result.events
        peaks = []
        for event in short:
            lo, hi = np.searchsorted(result.times_s, [event.start_s, event.end_s])
            peaks.append(float(result.demand[lo:hi].max()) if hi > lo else -1.0)
        busiest = short[int(np.argmax(peaks))]
        pad = max(2 * result.scenario.policy.lead_time_s, 3600)
        lo, hi = np.searchsorted(result.times_s, [busiest.start_s - pad, busiest.end_s + pad])
        title = f"close-up: {busiest.label} (the busiest calendar event)"
    else:
        centre = int(np.argmax(result.demand))
        span = max(1, 6 * 3600 // result.step_s)
        lo, hi = max(0, centre - span), min(len(result.demand), centre + span)
        title = "close-up: the busiest moment"
    t_zoom = _dates(result.times_s[lo:hi])
    zoom.fill_between(t_zoom, result.demand[lo:hi], step="post", color="0.75", label="demand")
    for name, run in sorted(result.runs.items(), key=lambda kv: kv[0] == "peakscale"):
        zoom.step(t_zoom, run.ready[lo:hi] * cap, where="post", lw=1.4 if name == "peakscale" else 1.0, color=COLOURS.get(name), label=name)
    for event in result.events:
        if event.end_s >= result.times_s[lo] and event.start_s <= result.times_s[hi - 1]:
            zoom.axvspan(wall_datetime(event.start_s), wall_datetime(event.end_s), color="gold", alpha=0.25, lw=0)
    zoom.set_title(title)
    zoom.set_ylabel("demand / ready capacity")
    zoom.legend(loc="upper left", fontsize=8, ncol=3)
    zoom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError("--plot", f"cannot write {str(path)!r} ({exc.strerror or exc})", "give a writable path") from None
    finally:
        plt.close(fig)


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
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError("--plot", f"cannot write {str(path)!r} ({exc.strerror or exc})", "give a writable path") from None
    finally:
        plt.close(fig)
