"""`make cluster` / `make cluster-down`: the whole thing on this machine, before a real cluster.

    python -m tests.cluster.local up      # control plane in the background, `pulumi up` of dev
    python -m tests.cluster.local status  # what runs, and the line to use it
    python -m tests.cluster.local down    # `pulumi destroy`, then every process stopped by pid

``up`` starts the same control plane the tests use (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok with three simulated nodes, the LoadBalancer stand-in), in the background,
under ``$PEAKSCALE_CACHE/cluster`` (default ``~/.cache/peakscale/cluster``); installs
CloudNativePG's CRDs; runs `pulumi up` of the dev stack, which installs the chart, the tiers and
their ScalingPolicies; and ends with one line, ``export KUBECONFIG=<path>``, for kubectl and
peakscale. The pids are kept in ``state.json``; ``down`` reads them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.cluster.controlplane import BIN, CACHE, ControlPlane, wait_for

HOME = Path(os.environ.get("PEAKSCALE_CLUSTER_DIR") or CACHE / "cluster")
STATE = HOME / "state.json"


def say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running() -> dict | None:
    if not STATE.exists():
        return None
    state = json.loads(STATE.read_text())
    return state if all(alive(pid) for pid in state["pids"].values()) else None


def up() -> None:
    state = running()
    if state is not None:
        say("already running; `make cluster-down` stops it")
        print(f"export KUBECONFIG={state['kubeconfig']}")
        return
    if STATE.exists():
        say("a previous cluster died; cleaning up what is left of it")
        down()
    began = time.monotonic()
    HOME.mkdir(parents=True, exist_ok=True)
    say(f"starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok under {HOME}")
    plane = ControlPlane(HOME / "plane").start()
    pids = {p.name: p.proc.pid for p in plane.processes}
    STATE.write_text(json.dumps({"pids": pids, "kubeconfig": str(plane.kubeconfig), "url": plane.url}, indent=1))
    say(f"control plane {plane.version()['gitVersion']} ready at {plane.url} ({time.monotonic() - began:.0f} s)")
    from tests.cluster.objects import add_nodes
    from tests.cluster.pulumi_stack import dev_stack, install_cnpg_crds

    api = plane.api()
    add_nodes(api, 3, pool="local", cpu="16", memory="64Gi")
    say(f"CloudNativePG CRDs installed: {', '.join(install_cnpg_crds(api))}")
    say("pulumi up of the dev stack (the tiers, the chart, the ScalingPolicies)")
    stack = dev_stack(HOME / "pulumi", plane.kubeconfig)
    result = stack.up(color="never", on_output=lambda line: print(f"  {line}", flush=True))
    say(f"pulumi up: {result.summary.resource_changes} in {time.monotonic() - began:.0f} s in all")
    say(f"kubectl and the control plane's binaries: export PATH={BIN}:$PATH")
    say("then: kubectl get scalingpolicies -A; peakscale promo list -n live-dev --store kube")
    print(f"export KUBECONFIG={plane.kubeconfig}")


def down() -> None:
    if not STATE.exists():
        say("no cluster is running")
        return
    state = json.loads(STATE.read_text())
    if "kube-apiserver" in state["pids"] and alive(state["pids"]["kube-apiserver"]) and (HOME / "pulumi" / "state").exists():
        from tests.cluster.pulumi_stack import dev_stack

        say("pulumi destroy of the dev stack")
        try:
            dev_stack(HOME / "pulumi", Path(state["kubeconfig"])).destroy(color="never", on_output=lambda line: print(f"  {line}", flush=True))
        except Exception as exc:  # noqa: BLE001 (stop the processes whatever happened)
            say(f"pulumi destroy failed ({type(exc).__name__}); stopping the processes anyway")
    for name, pid in reversed(list(state["pids"].items())):
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_for(f"{name} to stop", lambda pid=pid: not alive(pid), 20)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
            say(f"stopped {name} (pid {pid})")
    import shutil

    shutil.rmtree(HOME, ignore_errors=True)
    say("done")


def status() -> None:
    state = running()
    if state is None:
        say("not running; `make cluster` starts it")
        sys.exit(1)
    say(f"running at {state['url']}: " + ", ".join(f"{n} ({p})" for n, p in state["pids"].items()))
    print(f"export KUBECONFIG={state['kubeconfig']}")


def main() -> None:
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
