"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go does it: only the holder writes.

* Each candidate judges a Lease by its own clock: it remembers the record it last read and when
  it saw it change (``observed``); a Lease held by another is free once it has been seen unchanged
  for ``leaseDurationSeconds``. Timestamps in the record itself (another machine's clock) are
  never trusted, so clock skew between instances does not matter.
* The holder renews on its own thread every ``retry_period_s`` (2 s), not once per cycle, so a
  long cycle never lets the Lease lapse.
* ``holds()`` is true only while the last successful renewal is younger than
  ``renew_deadline_s`` (10 s, below the 15 s lease): a paused or partitioned leader stops writing
  before any other instance may take over. The controller checks it before every write.
* Acquire and renew go through an optimistic replace with ``resourceVersion``: of two instances
  racing, one gets a 409 and stays a follower.

Hazard (as in client-go): there is no fencing; a write already sent when the renew deadline passes
still lands. Keep the renew deadline well below the lease duration.

``run`` is the renewal loop; tests can instead call ``try_acquire_or_renew`` with an injected clock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable


from autoscaler.adapters.kube import Kube, now_micro
from autoscaler.errors import KubeError, KubeUnreachable

log = logging.getLogger("peakscale.leader")

#: client-go's defaults (and the chart's values)
LEASE_DURATION_S = 15
RENEW_DEADLINE_S = 10
RETRY_PERIOD_S = 2


#: on the Lease: the holder's version, and the ScalingPolicy spec fields it knows (``preflight``)
VERSION_ANNOTATION = "peakscale.io/version"
FIELDS_ANNOTATION = "peakscale.io/policy-fields"


def lease_annotations() -> dict[str, str]:
    from autoscaler import __version__
    from autoscaler.core.resources import policy_fields

    return {VERSION_ANNOTATION: __version__, FIELDS_ANNOTATION: ",".join(policy_fields())}


class NotLeader(Exception):
    """This instance does not hold the Lease (or can no longer be sure it does): write nothing."""


@dataclass(frozen=True)
class _Record:
    holder: str
    renew_time: str
    duration_s: int
    transitions: int


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: float = LEASE_DURATION_S,
        renew_deadline_s: float = RENEW_DEADLINE_S,
        retry_period_s: float = RETRY_PERIOD_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if not 0 < retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.clock = clock
        self.monotonic = monotonic or (time.monotonic if clock is time.time else clock)
        self._lock = threading.Lock()
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self._leader = False
        #: when this instance last reached the API server and read the Lease (monotonic)
        self._contact_at: float | None = None
        self.transitions = 0
        #: set whenever this instance becomes the leader (the controller's loop waits on it)
        self.acquired = threading.Event()

    # --- what the controller asks -------------------------------------------------------------
    def holds(self) -> bool:
        """True while this instance holds the Lease and renewed it within the renew deadline."""
        with self._lock:
            return self._leader and self._renewed_at is not None and self.monotonic() - self._renewed_at < self.renew_deadline_s

    def in_touch(self) -> bool:
        """This instance could take over: it read the Lease within the last lease duration."""
        with self._lock:
            return self._contact_at is not None and self.monotonic() - self._contact_at < self.lease_duration_s

    def check(self) -> None:
        """Raise ``NotLeader`` unless ``holds()``: called before every write."""
        if not self.holds():
            raise NotLeader(f"{self.identity} does not hold Lease {self.namespace}/{self.name}")

    @property
    def is_leader(self) -> bool:
        return self.holds()

    # --- one attempt (client-go's tryAcquireOrRenew) -------------------------------------------
    def try_acquire_or_renew(self, now_s: float | None = None) -> bool:
        """Acquire or renew once; return whether this instance holds the Lease now.

        The Lease goes over the wire as plain JSON (``Kube.read_lease``): its MicroTimes survive."""
        now = self.clock() if now_s is None else now_s
        mono = self.monotonic() if now_s is None or self.monotonic is not self.clock else now_s
        try:
            lease = self._read()
        except KubeUnreachable:
            raise  # no answer at all: the caller says the API cannot be reached
        except KubeError:
            return self._failed(mono)
        with self._lock:
            self._contact_at = mono
        if lease is None:
            return self._create(now, mono)
        spec = lease.setdefault("spec", {})
        record = _Record(spec.get("holderIdentity") or "", str(spec.get("renewTime")), int(spec.get("leaseDurationSeconds") or self.lease_duration_s), int(spec.get("leaseTransitions") or 0))
        with self._lock:
            if record != self._observed:
                self._observed, self._observed_at = record, mono
            observed_at = self._observed_at
        held_by_other = record.holder and record.holder != self.identity
        if held_by_other and mono < observed_at + record.duration_s:
            with self._lock:
                self._leader = False
            return False
        if record.holder != self.identity:
            spec["leaseTransitions"] = record.transitions + 1
            spec["acquireTime"] = now_micro(now)
            spec["holderIdentity"] = self.identity
            # who leads, at which version, knowing which ScalingPolicy fields (preflight reads them)
            meta = lease.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **lease_annotations()}
        spec["renewTime"] = now_micro(now)
        spec["leaseDurationSeconds"] = int(self.lease_duration_s)
        try:
            self.kube.replace_lease(self.namespace, self.name, lease)
        except KubeUnreachable:
            raise  # no answer at all: the caller says the API cannot be reached
        except KubeError:
            return self._failed(mono)  # 409: someone else renewed or took it first
        if record.holder != self.identity:
            self.transitions += 1
            log.info("%s acquired Lease %s/%s", self.identity, self.namespace, self.name)
        return self._won(mono, _Record(self.identity, str(spec["renewTime"]), int(self.lease_duration_s), int(spec.get("leaseTransitions") or 0)))

    def _read(self) -> dict[str, Any] | None:
        """The Lease as JSON, or None when there is none."""
        return self.kube.read_lease(self.namespace, self.name)

    def _create(self, now: float, mono: float) -> bool:
        renewed = now_micro(now)
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": lease_annotations()},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration_s),
                "acquireTime": renewed,
                "renewTime": renewed,
                "leaseTransitions": 0,
            },
        }
        try:
            self.kube.create_lease(self.namespace, body)
        except KubeUnreachable:
            raise  # no answer at all: the caller says the API cannot be reached
        except KubeError:
            return self._failed(mono)
        return self._won(mono, _Record(self.identity, renewed, int(self.lease_duration_s), 0))

    def _won(self, mono: float, record: _Record) -> bool:
        with self._lock:
            newly = not self._leader
            self._leader, self._renewed_at = True, mono
            self._observed, self._observed_at = record, mono
        if newly:
            self.acquired.set()  # the cycle loop starts a cycle now, not an interval later
        return True

    def _failed(self, mono: float) -> bool:
        """A failed attempt: a leader stays one only until its renew deadline passes."""
        with self._lock:
            if self._leader and (self._renewed_at is None or mono - self._renewed_at >= self.renew_deadline_s):
                self._leader = False
                log.warning("%s lost Lease %s/%s (no renewal within %gs)", self.identity, self.namespace, self.name, self.renew_deadline_s)
            return self._leader and self._renewed_at is not None and mono - self._renewed_at < self.renew_deadline_s

    # --- the renewal loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, paused: Callable[[], bool] = lambda: False) -> None:
        """Acquire, then renew every retry period (jittered, as client-go's JitterUntil), until
        ``stop``; releases the Lease on the way out so a standby takes over at once."""
        while not stop.is_set():
            if not paused():
                try:
                    self.try_acquire_or_renew()
                except Exception as exc:  # noqa: BLE001 (any transport failure: try again, stay safe)
                    self._failed(self.monotonic())
                    log.warning("lease %s/%s: %s", self.namespace, self.name, type(exc).__name__)
            stop.wait(self.retry_period_s * (1 + 0.2 * random.random()))
        self.release()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="peakscale-leader", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the Lease up (an empty holder, duration 1 s) if this instance holds it."""
        if not self.holds():
            return
        try:
            lease = self._read()
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = now_micro(self.clock())
            self.kube.replace_lease(self.namespace, self.name, lease)
        except Exception as exc:  # noqa: BLE001 (shutting down: the Lease expires on its own)
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, type(exc).__name__)
        with self._lock:
            self._leader = False
