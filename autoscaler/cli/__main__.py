"""``python -m autoscaler.cli``: the same as the ``peakscale`` command."""

from autoscaler.cli.app import main

main()
