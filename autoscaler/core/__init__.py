"""The pure core: the calendar model, the forecaster, the planner, the cycle decision and the
simulated cluster of the backtest.

Nothing in this package does I/O: no Kubernetes, no Prometheus, no files, no YAML or CSV parsing.
It takes numbers, arrays and models and returns them; the adapters and the controller sit around
it. A test imports it with those libraries made unimportable.
"""
