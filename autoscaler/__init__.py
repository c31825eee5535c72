"""peakscale: pre-scale capacity tiers before their peaks.

The public API, re-exported lazily (importing ``autoscaler`` loads nothing else):

- the pure core (``autoscaler.core``): the calendar model, the forecaster, the planner, the one
  cycle decision (``decide``) and its replay, the simulated cluster and the backtest;
- the errors (``autoscaler.errors``);
- the controller (``autoscaler.controller``) and the CLI (``autoscaler.cli``) for those who embed
  them.

Adapters (Prometheus, Kubernetes, calendar stores and files) live in ``autoscaler.adapters``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "PromotionEvent": "autoscaler.core.calendar",
    "EventProfile": "autoscaler.core.calendar",
    "ForecastSettings": "autoscaler.core.baseline",
    "forecast_at": "autoscaler.core.forecast",
    "PlanPolicy": "autoscaler.core.plan",
    "plan_step": "autoscaler.core.plan",
    "CyclePolicy": "autoscaler.core.cycle_types",
    "CycleState": "autoscaler.core.cycle_types",
    "CycleDecision": "autoscaler.core.cycle_types",
    "Seen": "autoscaler.core.cycle_types",
    "HpaFloor": "autoscaler.core.cycle_types",
    "decide": "autoscaler.core.cycle",
    "index_calendar": "autoscaler.core.cycle",
    "replay": "autoscaler.core.replay",
    "Scenario": "autoscaler.core.backtest",
    "run_backtest": "autoscaler.core.backtest",
    "Trace": "autoscaler.core.trace",
    "ScalingPolicySpec": "autoscaler.core.resources",
    "PromotionEventSpec": "autoscaler.core.resources",
    "PeakscaleError": "autoscaler.errors",
    "InputError": "autoscaler.errors",
    "ConfigError": "autoscaler.errors",
    "Unavailable": "autoscaler.errors",
    "load_trace": "autoscaler.adapters.trace_files",
    "load_calendar": "autoscaler.adapters.calendar_files",
    "Controller": "autoscaler.controller.reconcile",
    "ControllerOptions": "autoscaler.controller.model",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:  # PEP 562: the API loads only what is asked for
    if name not in _API:
        raise AttributeError(f"module 'autoscaler' has no attribute {name!r}")
    value = getattr(import_module(_API[name]), name)
    globals()[name] = value
    return value
