"""What the webhook reads from the cluster, always off the request path.

Policies may scope by namespace labels; asking the API server during a review would make every
review as slow as the API server (and an API server that calls a webhook that calls the API
server can deadlock under load). So a background thread lists and watches Namespaces into a
dict, and reviews only read that dict. Without cluster credentials the cache stays empty: label
scopes do not match, and the server says so once at start-up.

This is the only module (with :mod:`webhook.registration`) that imports ``kubernetes``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from webhook import errors, logs

log = logs.get("webhook.cluster")


def load_credentials() -> Any:
    """A configured ``kubernetes.client.ApiClient``: in-cluster first, then kubeconfig.

    Raises :class:`~webhook.errors.ClusterUnavailable` when neither exists.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError, TypeError) as exc:
            raise errors.ClusterUnavailable(f"no in-cluster credentials and no usable kubeconfig: {exc}") from None
    return client.ApiClient()


class NamespaceCache:
    """Namespace name -> labels, filled by list+watch in a daemon thread.

    ``labels(name)`` returns ``None`` for a namespace not (yet) seen: "unknown" is not "no labels",
    and scopes treat it as not matching. Watches are restarted after errors with backoff, and
    re-listed when the API server says the resourceVersion is too old (410 Gone).
    """

    def __init__(self, api_client: Any | None = None, *, timeout_seconds: int = 300) -> None:
        self._labels: dict[str, Mapping[str, str]] = {}
        self._api_client = api_client
        self._timeout_seconds = timeout_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()

    def labels(self, name: str) -> Mapping[str, str] | None:
        return self._labels.get(name)

    def apply_event(self, event_type: str, name: str, labels: Mapping[str, str] | None) -> None:
        """Apply one watch event (also used by tests and by the initial list)."""
        if event_type == "DELETED":
            self._labels.pop(name, None)
        else:
            self._labels[name] = dict(labels or {})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="namespace-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubernetes import client, watch
        from kubernetes.client.exceptions import ApiException

        api = client.CoreV1Api(self._api_client)
        backoff = 1.0
        while not self._stop.is_set():
            try:
                listing = api.list_namespace(_request_timeout=10)
                fresh = {ns.metadata.name: dict(ns.metadata.labels or {}) for ns in listing.items}
                self._labels = fresh  # one assignment: readers see the old or the new dict, never half
                self.synced.set()
                version = listing.metadata.resource_version
                stream = watch.Watch().stream(
                    api.list_namespace, resource_version=version, timeout_seconds=self._timeout_seconds
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    self.apply_event(event["type"], obj.metadata.name, obj.metadata.labels)
                backoff = 1.0
            except ApiException as exc:
                if exc.status != 410:  # 410: resourceVersion too old; re-list at once
                    log.warning("namespace_watch_error", status=exc.status, retry_in=backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 60.0)
            except Exception as exc:  # noqa: BLE001 - network errors of every kind; keep trying
                log.warning("namespace_watch_error", error=str(exc), retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)


def start_namespace_cache() -> NamespaceCache | None:
    """Start the cache when credentials exist; else log once that label scopes will not match."""
    try:
        api_client = load_credentials()
    except errors.ClusterUnavailable as exc:
        log.warning(
            "no_cluster",
            detail="namespaceSelector scopes and exemptions will not match: namespace labels are unknown",
            reason=str(exc),
        )
        return None
    cache = NamespaceCache(api_client)
    cache.start()
    started = time.monotonic()
    log.info("namespace_cache_started", waited_ms=round((time.monotonic() - started) * 1000))
    return cache
