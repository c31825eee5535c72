"""``peakscale redis-role``: the sidecar that keeps a Redis pod's role as its label
(``adapters.redis_role``), for the cache's primary-only Service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from autoscaler.cli.app import app
from autoscaler.cli.output import host_port


@app.command("redis-role")
def redis_role(
    pod: Annotated[str, typer.Option(envvar="POD_NAME", help="This pod's name (in a pod: its POD_NAME).")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", envvar="POD_NAMESPACE", help="This pod's namespace.")],
    redis_address: Annotated[str, typer.Option("--redis", help="This pod's Redis, host:port.")] = "127.0.0.1:6379",
    every: Annotated[str, typer.Option(help="How often to look at the role (a demoted primary's label follows within this).")] = "2s",
    tls_ca_file: Annotated[Optional[Path], typer.Option(help="A TLS Redis: the CA file its certificate is verified with.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Look and label once, then exit.")] = False,
    kubeconfig: Annotated[Optional[Path], typer.Option(help="Kubeconfig (in a pod: its ServiceAccount).")] = None,
) -> None:
    """Label this pod peakscale.io/redis-role=primary or replica as its Redis' ROLE says, on every change.

    The password comes from REDISCLI_AUTH, never the command line. Runs beside Redis in each data pod of a Sentinel-mode cache; the <name>-primary Service selects the primary.

    Example: peakscale redis-role --pod cache-node-0 -n live --redis 127.0.0.1:6379
    """
    import logging

    import redis

    from autoscaler.adapters.kube import Kube, api_client
    from autoscaler.adapters.redis_cluster import tls_options
    from autoscaler.adapters.redis_role import keep_labelled
    from autoscaler.core.durations import parse_duration_s

    every_s = parse_duration_s(every, field="--every")
    host, port = host_port(redis_address, "--redis", "e.g. --redis 127.0.0.1:6379")
    client = redis.Redis(host=host, port=port, password=os.environ.get("REDISCLI_AUTH") or None, socket_timeout=5, **tls_options(str(tls_ca_file) if tls_ca_file else None))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kube = Kube(api_client(str(kubeconfig) if kubeconfig else None, None))
    keep_labelled(kube, namespace, pod, client, every_s=every_s, looks=1 if once else None)
