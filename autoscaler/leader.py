"""Leader election with a ``coordination.k8s.io/v1`` Lease: only the holder writes.

Each controller instance tries, every cycle, to acquire or renew the Lease with an optimistic
replace (resourceVersion); a 409 means another instance won the race. A Lease not renewed within
``leaseDurationSeconds`` may be taken over. Time comes from the injected clock, so tests can
age a Lease without sleeping.
"""

from __future__ import annotations

from datetime import datetime, timezone

from kubernetes import client
from kubernetes.client.rest import ApiException

from autoscaler.kube import Kube, now_micro


def _seconds(stamp) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, datetime):
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


class LeaderElector:
    def __init__(self, kube: Kube, *, namespace: str, name: str, identity: str, duration_s: int = 15) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration_s = duration_s
        self.is_leader = False

    def try_acquire(self, now_s: float) -> bool:
        """Acquire or renew; return whether this instance holds the Lease now."""
        api = self.kube.coordination
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                self.is_leader = False
                return False
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.duration_s,
                    acquire_time=now_micro(now_s),
                    renew_time=now_micro(now_s),
                    lease_transitions=0,
                ),
            )
            try:
                api.create_namespaced_lease(self.namespace, body)
                self.is_leader = True
            except ApiException:
                self.is_leader = False
            return self.is_leader
        spec = lease.spec
        holder = spec.holder_identity
        renewed = _seconds(spec.renew_time)
        duration = spec.lease_duration_seconds or self.duration_s
        expired = renewed is None or now_s > renewed + duration
        if holder != self.identity and not expired:
            self.is_leader = False
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now_micro(now_s)
            spec.holder_identity = self.identity
        spec.renew_time = now_micro(now_s)
        spec.lease_duration_seconds = self.duration_s
        try:
            api.replace_namespaced_lease(self.name, self.namespace, lease)
            self.is_leader = True
        except ApiException:
            self.is_leader = False  # 409: someone else renewed or took it first
        return self.is_leader
