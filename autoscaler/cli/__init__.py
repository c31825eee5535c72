"""The ``peakscale`` command line: one module per command over the library.

``app`` holds the Typer application and the one place where errors become a one-line message;
each command module registers itself on it.
"""

from autoscaler.cli.app import main

__all__ = ["main"]
