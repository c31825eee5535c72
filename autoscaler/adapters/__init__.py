"""Adapters at the edge: Prometheus, the Kubernetes API, calendar stores, trace and calendar
files, guarded YAML, the backtest plot. Each turns the outside world into core models and back."""
