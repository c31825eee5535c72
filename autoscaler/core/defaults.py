"""The controller's defaults that its command line names before anything heavy is imported
(``peakscale --help`` must start fast): one home for each, read by the core and the CLI alike."""

#: the leader-election Lease's name by default (the chart's release "peakscale" names it so too)
DEFAULT_LEASE_NAME = "peakscale-controller"

#: the controller's default cap on one policy's placeholder pods (--headroom-max-pods)
DEFAULT_MAX_PLACEHOLDERS = 100

#: a policy's metrics are stale once their newest sample is this old (--stale-after), or three of its
#: steps when that is longer: the controller's observe step and every replay of its cycles use
#: ``stale_after``
STALE_AFTER_S = 300


def stale_after(step_s: int, setting_s: int = STALE_AFTER_S) -> int:
    """How old a policy's newest sample may be before its metrics count as stale."""
    return max(setting_s, 3 * step_s)

#: the coverage a plan may be sized to (spec.coverage, --coverage): one home for its bounds
MIN_COVERAGE, MAX_COVERAGE = 0.5, 0.9999


def checked_coverage(value: float, field: str = "spec.coverage") -> float:
    """``value`` when it is a coverage a plan can be sized to; else the error naming ``field``."""
    from autoscaler.errors import InputError

    if not MIN_COVERAGE <= value <= MAX_COVERAGE:
        raise InputError(field, f"{value:g} is outside [{MIN_COVERAGE:g}, {MAX_COVERAGE:g}]", "e.g. 0.99 (99 % of event demand) or 0.999")
    return value
