"""The ``peakscale`` command line: one module per command over the library.

``app`` holds the Typer application and the one place where errors become a one-line message;
importing this package registers every command module on it, then the commands other installed
distributions add (``peakscale.commands``: the stacks' ``render``).
"""

from autoscaler.cli import backtest, controller, plan, preflight, promo, promo_review, redis_role, reshard, trace  # noqa: F401 (each registers its commands)
from autoscaler.cli.app import app, load_plugins, main, verbatim_examples

load_plugins(app)
verbatim_examples(app)

__all__ = ["app", "main"]
