"""The cloud's part of a local cluster: a LoadBalancer Service gets an address.

In a cloud, the cloud-controller-manager's service controller provisions a load balancer for each
Service of type LoadBalancer and writes its address into ``status.loadBalancer``; kind clusters use
cloud-provider-kind for the same. This control plane has no cloud, so this small process plays that
one role and nothing else: it hands each such Service an address from TEST-NET-1 (192.0.2.0/24,
reserved for documentation: nothing is ever sent to it) in its status, so that what waits for the
address (``pulumi up``, an SRE's ``kubectl get svc``) sees what a cloud would show.

    python -m tests.cluster.cloud --kubeconfig admin.kubeconfig
"""

from __future__ import annotations

import argparse
import ipaddress
import time

from kubernetes import client, config

POOL = ipaddress.ip_network("192.0.2.0/24")


def assign(core: client.CoreV1Api, taken: set[str]) -> int:
    """One pass: every LoadBalancer Service without an address gets one. Returns how many."""
    done = 0
    for svc in core.list_service_for_all_namespaces().items:
        if svc.spec.type != "LoadBalancer" or (svc.status.load_balancer and svc.status.load_balancer.ingress):
            continue
        address = next(str(ip) for ip in POOL.hosts() if str(ip) not in taken)
        taken.add(address)
        body = {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}}
        core.patch_namespaced_service_status(svc.metadata.name, svc.metadata.namespace, body)
        done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between passes")
    args = parser.parse_args()
    core = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    taken: set[str] = set()
    while True:
        try:
            assign(core, taken)
        except Exception as exc:  # noqa: BLE001 (the API server restarting: try again)
            print(f"cloud: {type(exc).__name__}: {exc}", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    main()
