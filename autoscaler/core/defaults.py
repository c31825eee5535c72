"""The controller's defaults that its command line names before anything heavy is imported
(``peakscale --help`` must start fast): one home for each, read by the core and the CLI alike."""

#: the leader-election Lease's name by default (the chart's release "peakscale" names it so too)
DEFAULT_LEASE_NAME = "peakscale-controller"

#: the controller's default cap on one policy's placeholder pods (--headroom-max-pods)
DEFAULT_MAX_PLACEHOLDERS = 100
