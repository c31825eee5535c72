"""Entry point of the Pulumi program (``main: stacks/`` in Pulumi.yaml)."""

from stacks.program import main

main()
