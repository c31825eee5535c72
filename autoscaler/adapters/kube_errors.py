"""How the Kubernetes adapter answers the API server's failures: conflicts and transient errors are
retried (``retry_conflict``), and a refusal of the user's object (422) becomes the user's error
naming each field (``refusal``). Nothing here talks to the cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3
from kubernetes.client.rest import ApiException

from autoscaler.errors import InputError, clip

T = TypeVar("T")

#: server errors and timeouts are retried this many times, after these waits (seconds)
BACKOFF_S = (0.2, 0.5, 1.0)


def _transient(exc: Exception) -> bool:
    """A 5xx, a 429 or a transport failure (timeout, connection reset): worth another try."""
    if isinstance(exc, ApiException):
        return exc.status is not None and (exc.status >= 500 or exc.status == 429)
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def retry_conflict(action: Callable[[], T], attempts: int = 5, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a read-modify-replace: on 409 run it again at once (it re-reads), up to ``attempts``
    times; on a server error or a timeout, again after a bounded backoff (``BACKOFF_S``)."""
    conflicts = 0
    waits = list(BACKOFF_S)
    while True:
        try:
            return action()
        except ApiException as exc:
            if exc.status == 409 and conflicts < attempts - 1:
                conflicts += 1
                continue
            if not (_transient(exc) and waits):
                raise
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError):
            if not waits:
                raise
        sleep(waits.pop(0))


def refusal(exc: ApiException, what: str) -> InputError | None:
    """A 422 from kube-apiserver (the object fails the CRD's schema or the API's validation) as the
    user's error, naming each field the server named; None for any other failure."""
    if exc.status != 422:
        return None
    try:
        details = json.loads(exc.body or "{}").get("details") or {}
    except ValueError:
        details = {}
    causes = [f"{c.get('field', '')}: {c.get('message', '')}".strip(": ") for c in details.get("causes") or []]
    problem = "; ".join(causes) if causes else (exc.reason or "invalid")
    return InputError(what, clip(f"the API server refuses it: {problem}", 400), "fix the field and run it again; nothing was stored")
