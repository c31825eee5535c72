"""How the Kubernetes adapter answers the API server's failures, as kopf does at its boundary:

* every call of the official client goes through ``Translating``, which turns its ``ApiException``
  (and a transport failure: a timeout, a refused or reset connection) into the project's own
  ``KubeApiError``s (``KubeNotFound``, ``KubeConflict``, ``KubeForbidden``, ``KubeInvalid``,
  ``KubeUnavailable``, and ``KubeUnreachable`` when nothing answered), so no module outside ``autoscaler/adapters`` knows the client's exceptions;
* conflicts and transient errors are retried (``retry_conflict``);
* a refusal of the user's object (422) becomes the user's error naming each field (``refusal``).

Nothing here talks to the cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.rest import ApiException

from autoscaler.errors import InputError, KubeApiError, KubeConflict, KubeForbidden, KubeInvalid, KubeNotFound, KubeUnavailable, KubeUnreachable, clip

T = TypeVar("T")

#: server errors and timeouts are retried this many times, after these waits (seconds)
BACKOFF_S = (0.2, 0.5, 1.0)

_BY_STATUS: dict[int, type[KubeApiError]] = {404: KubeNotFound, 409: KubeConflict, 401: KubeForbidden, 403: KubeForbidden, 400: KubeInvalid, 422: KubeInvalid}
#: what a request that got no answer raises
TRANSPORT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def translated(exc: BaseException) -> KubeApiError:
    """The project's error for the client's ``ApiException`` or a transport failure."""
    if isinstance(exc, ApiException):
        status = exc.status if isinstance(exc.status, int) and exc.status > 0 else None
        kind = _BY_STATUS.get(status or 0) or (KubeUnavailable if status is None or status >= 500 or status == 429 else KubeApiError)
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
        return kind(status, str(exc.reason or ""), body)
    return KubeUnreachable(None, f"{type(exc).__name__}: {clip(str(exc).splitlines()[0] if str(exc) else '', 200)}".rstrip(": "))


class Translating:
    """One of the client's API objects (``CoreV1Api``, ...) whose calls raise ``KubeApiError``s."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except (ApiException, *TRANSPORT) as exc:
                raise translated(exc) from exc

        return call


def retry_conflict(action: Callable[[], T], attempts: int = 5, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a read-modify-replace: on 409 run it again at once (it re-reads), up to ``attempts``
    times; on a server error or a timeout, again after a bounded backoff (``BACKOFF_S``)."""
    conflicts = 0
    waits = list(BACKOFF_S)
    while True:
        try:
            return action()
        except KubeConflict:
            if conflicts >= attempts - 1:
                raise
            conflicts += 1
            continue
        except KubeUnavailable:
            if not waits:
                raise
        sleep(waits.pop(0))


def refusal(exc: KubeApiError, what: str) -> InputError | None:
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
