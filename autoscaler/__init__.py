"""peakscale: pre-scale capacity tiers before their peaks.

Pure logic (``forecast``, ``plan``, ``simulate``) works on numpy arrays and frozen models and
knows nothing of Kubernetes or Prometheus. Adapters (trace files, calendars) sit at the edges.
The CLI in ``autoscaler.cli.app`` is a thin shell over the same functions.
"""

__version__ = "0.1.0"
