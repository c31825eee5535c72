"""``peakscale render``: preview, offline, every Kubernetes object a stack declares.

Joins the ``peakscale`` command through the entry-point group ``peakscale.commands``, so the
autoscaler never imports the stacks (and the controller's image needs no Pulumi). Pulumi is
imported only when the command runs; without the ``stacks`` extra it says how to install it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autoscaler.cli.output import check_output
from autoscaler.errors import CommandFailed, InputError

REPO = Path(__file__).resolve().parent.parent


def render(
    stack: Annotated[str, typer.Option(help="Stack whose Pulumi.<stack>.yaml config to use (dev, prod, ...).")] = "dev",
    out: Annotated[Path, typer.Option(help="Folder for the YAML files, one per object.")] = Path("rendered"),
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml (a summary for scripts).")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
) -> None:
    """Preview, offline, every Kubernetes object `pulumi up` would declare for a stack.

    This is a PREVIEW, NOT A DEPLOYMENT: the Pulumi program runs in-process under the official mocks, with no engine, no provider and no cluster, and writes what it asks for as YAML (<namespace>/<kind>-<name>.yaml, secrets redacted) plus _stack.yaml with the stack outputs and the non-Kubernetes resources (Helm releases, generated passwords). Review it or diff it before `pulumi up`. The policy pack's rules (policy/) are checked on what it rendered: a violation exits 1, naming the rule.

    Examples:

    peakscale render --stack prod --out /tmp/r

    diff -ru rendered-before/ rendered/
    """
    try:
        import pulumi  # noqa: F401 (only to say which extra is missing)
    except ImportError:
        raise CommandFailed("render needs the Pulumi SDK: pip install 'peakscale[stacks]'") from None
    from rich.console import Console
    from rich.table import Table

    from stacks.render import load_stack_file, stack_file, write
    from stacks.render import render as run_render

    check_output(output)
    output = "json" if as_json else output
    repo = Path.cwd() if (Path.cwd() / "Pulumi.yaml").is_file() else REPO
    config = load_stack_file(repo, stack)
    used = stack_file(repo, stack)
    rendered = run_render(config, stack)
    try:
        paths = write(rendered, out)
    except OSError as error:
        raise InputError("--out", f"cannot write {str(out)!r} ({error.strerror or error})") from None
    objects = rendered.objects
    from stacks.crossguard import RESOURCE_RULES, STACK_RULES, violations

    broken = violations(objects)
    rules = len(RESOURCE_RULES) + len(STACK_RULES)
    if output != "table":
        import yaml

        doc = {"stack": stack, "config": str(used), "out": str(out), "objects": len(objects), "files": [str(p) for p in paths],
               "policy": {"rules": rules, "violations": [{"rule": r, "message": m} for r, m in broken]}}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2) if output == "json" else yaml.safe_dump(doc, sort_keys=False).rstrip())
        if broken:
            raise typer.Exit(1)
        return
    table = Table(title=f"stack {stack} (config {used}): {len(objects)} Kubernetes objects written to {out} (preview, not deployed)", title_justify="left")
    for col in ("namespace", "kind", "name"):
        table.add_column(col)
    for obj in objects:
        meta = obj.get("metadata") or {}
        table.add_row(meta.get("namespace") or "-", obj.get("kind", "?"), meta.get("name", "?"))
    console = Console() if Console().is_terminal else Console(width=150)
    console.print(table)
    if not broken:
        console.print(f"policy pack (policy/, as `pulumi preview --policy-pack policy` applies it): {rules} rules, all pass", highlight=False)
        return
    for rule, message in broken:
        console.print(f"policy {rule}: {message}", highlight=False, style="red")
    raise CommandFailed(f"{len(broken)} policy violation(s): `pulumi preview --policy-pack policy` would refuse this stack")
