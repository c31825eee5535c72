"""A load trace: a regular series of samples, missing samples as NaN.

The model only; reading and validating trace files lives in ``autoscaler.adapters.trace_files``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the largest value a sample may hold (a demand beyond it is a unit error, and sums of it overflow)
MAX_VALUE = 1e15
#: the most steps a trace may span (10 years of minutes)
MAX_SAMPLES = 10 * 366 * 1440


@dataclass(frozen=True)
class Trace:
    """A regular series: ``times_s`` in wall-clock seconds, ``values`` >= 0 or NaN where missing,
    fixed ``step_s``."""

    name: str
    times_s: np.ndarray
    values: np.ndarray
    step_s: int

    def __len__(self) -> int:
        return len(self.values)

    @property
    def missing(self) -> int:
        """Samples with no value (missing rows, empty values, NaN)."""
        return int(np.isnan(self.values).sum())
