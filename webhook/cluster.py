"""What the webhook reads from the cluster, always off the request path.

Policies may scope by namespace labels; asking the API server during a review would make every
review as slow as the API server (and an API server that calls a webhook that calls the API
server can deadlock under load). So a background thread lists and watches Namespaces into a
dict, and reviews only read that dict. Without cluster credentials the cache stays empty: label
scopes do not match, and the server says so once at start-up.

This is the only module (with :mod:`webhook.registration`) that imports ``kubernetes``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from webhook import errors, logs

log = logs.get("webhook.cluster")


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def credentials_present() -> bool:
    """Whether in-cluster credentials or a kubeconfig file exist, checked without importing the
    kubernetes client: importing it costs ~9 MB per worker, wasted when there is no cluster."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return True
    paths = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config"))
    return any(Path(p).expanduser().is_file() for p in paths.split(os.pathsep) if p)


def load_credentials() -> Any:
    """A configured ``kubernetes.client.ApiClient``: in-cluster first, then kubeconfig.

    Raises :class:`~webhook.errors.ClusterUnavailable` when neither exists.
    """
    if not credentials_present():
        raise errors.ClusterUnavailable(
            "no in-cluster service account and no kubeconfig file (KUBECONFIG or ~/.kube/config)"
        )
    from kubernetes import client
    from kubernetes import config as kube_config

    config: Any = kube_config  # the kubernetes client's loaders are untyped
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError, TypeError) as exc:
            raise errors.ClusterUnavailable(
                f"no in-cluster credentials and no usable kubeconfig: {exc}"
            ) from None
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

        api: Any = client.CoreV1Api(self._api_client)
        watcher: Any = watch
        backoff = 1.0
        while not self._stop.is_set():
            try:
                listing = api.list_namespace(_request_timeout=10)
                fresh: dict[str, Mapping[str, str]] = {
                    ns.metadata.name: dict(ns.metadata.labels or {}) for ns in listing.items
                }
                self._labels = fresh  # one assignment: readers see the old or the new dict, never half
                self.synced.set()
                version = listing.metadata.resource_version
                stream = watcher.Watch().stream(
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


class ParamCache:
    """Param objects of the kinds admission policies name in ``paramKind``, read from the cluster by
    list+watch in one daemon thread per kind, off the request path (like :class:`NamespaceCache`).

    ``objects(api_version, kind)`` returns what is known now (plain dicts, as policies read them);
    a kind not served by the cluster is logged once and stays empty, so bindings fall back to the
    param objects of the policy files and their ``parameterNotFoundAction``.
    """

    def __init__(self, api_client: Any | None = None, *, timeout_seconds: int = 300) -> None:
        self._api_client = api_client
        self._timeout_seconds = timeout_seconds
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._stop = threading.Event()

    def objects(self, api_version: str, kind: str) -> tuple[dict[str, Any], ...]:
        return tuple(self._objects.get((api_version, kind), {}).values())

    def apply_event(self, key: tuple[str, str], event_type: str, obj: dict[str, Any]) -> None:
        """Apply one watch event (also used by tests and by the initial list)."""
        metadata = obj.get("metadata") or {}
        identity = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        known = dict(self._objects.get(key, {}))  # copy, then one assignment: readers see whole maps
        if event_type == "DELETED":
            known.pop(identity, None)
        else:
            known[identity] = obj
        self._objects[key] = known

    def ensure(self, kinds: set[tuple[str, str]]) -> None:
        """Watch every ``(apiVersion, kind)`` of ``kinds`` not watched yet (policies reloaded with a
        new paramKind start a watch; a kind no longer used keeps its watch until restart)."""
        for key in sorted(kinds - self._threads.keys()):
            thread = threading.Thread(target=self._run, args=(key,), name=f"param-watch-{key[1]}", daemon=True)
            self._threads[key] = thread
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, key: tuple[str, str]) -> None:
        from kubernetes import dynamic
        from kubernetes.client.exceptions import ApiException

        make_client: Any = dynamic.DynamicClient
        backoff = 1.0
        while not self._stop.is_set():
            try:
                client: Any = make_client(self._api_client)
                resource = client.resources.get(api_version=key[0], kind=key[1])
                listing = resource.get(_request_timeout=10)
                self._objects[key] = {
                    (str(item["metadata"].get("namespace") or ""), str(item["metadata"]["name"])): item
                    for item in (i.to_dict() for i in listing.items)
                }
                version = listing.metadata.resourceVersion
                for event in client.watch(resource, resource_version=version, timeout=self._timeout_seconds):
                    if self._stop.is_set():
                        return
                    self.apply_event(key, event["type"], event["raw_object"])
                backoff = 1.0
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("param_watch_error", kind=key[1], api_version=key[0], status=exc.status,
                                retry_in=backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 300.0)
            except Exception as exc:  # noqa: BLE001 - unknown kinds (not served), network errors: keep trying
                log.warning("param_watch_error", kind=key[1], api_version=key[0], error=str(exc), retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 300.0)


def start_param_cache() -> ParamCache | None:
    """A param cache when credentials exist (logged once by :func:`start_namespace_cache` otherwise)."""
    try:
        api_client = load_credentials()
    except errors.ClusterUnavailable:
        return None
    return ParamCache(api_client)


def start_namespace_cache() -> tuple[NamespaceCache, AccessReviewCache] | None:
    """Start the caches when credentials exist; else log once that label scopes will not match."""
    try:
        api_client = load_credentials()
    except errors.ClusterUnavailable as exc:
        log.warning(
            "no_cluster",
            detail="namespaceSelector scopes will not match (namespace labels unknown); accessReview "
            "exemptions use their whenUnknown setting",
            reason=str(exc),
        )
        return None
    cache = NamespaceCache(api_client)
    cache.start()
    log.info("namespace_cache_started")
    return cache, AccessReviewCache(subject_access_review(api_client),
                                    ask_full=subject_access_review_full(api_client))


class AccessReviewCache:
    """SubjectAccessReview answers cached for ``ttl`` seconds, asked in a background thread.

    ``allowed`` never blocks: on a miss it returns ``None`` (the caller degrades per policy) and
    queues the question; the answer serves every review of that user for the next ``ttl`` seconds.
    The cache is bounded; the oldest entries go first.
    """

    def __init__(
        self, ask: Any, *, ttl: float = 30.0, max_entries: int = 10_000, ask_full: Any | None = None
    ) -> None:
        import concurrent.futures

        self._ask = ask
        self._ask_full = ask_full
        """Asks one whole SubjectAccessReview (:meth:`authorize`); ``None``: only :meth:`allowed`."""
        self._ttl = ttl
        self._max = max_entries
        self._answers: dict[tuple[Any, ...], tuple[Any, float]] = {}
        self._pending: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="access-review")

    def allowed(
        self,
        *,
        user: str,
        groups: tuple[str, ...],
        verb: str,
        group: str,
        resource: str,
        name: str,
        namespace: str,
    ) -> bool | None:
        key = (user, groups, verb, group, resource, name, namespace)
        now = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[1] > now:
                return bool(cached[0])
            if key in self._pending:
                return None
            self._pending.add(key)
        self._pool.submit(self._fill, key)
        return None

    def authorize(self, attributes: Any) -> Any:
        """The CEL ``authorizer``'s question (:class:`webhook.cel.k8s_authz.Attributes`: paths,
        subresources, selectors, uid and extra too), answered like :meth:`allowed`: the cached
        decision, or ``None`` while it is asked in the background."""
        if self._ask_full is None:
            return None
        key = ("full", attributes)
        now = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
            if key in self._pending:
                return None
            self._pending.add(key)
        self._pool.submit(self._fill, key)
        return None

    def _fill(self, key: tuple[Any, ...]) -> None:
        try:
            ask_full = self._ask_full
            answer = ask_full(key[1]) if key[0] == "full" and ask_full is not None else bool(self._ask(*key))
        except Exception as exc:  # noqa: BLE001 - an unreachable API server leaves the answer unknown
            log.warning("access_review_failed", error=str(exc))
            with self._lock:
                self._pending.discard(key)
            return
        with self._lock:
            self._pending.discard(key)
            if len(self._answers) >= self._max:
                self._answers.pop(next(iter(self._answers)))
            self._answers[key] = (answer, time.monotonic() + self._ttl)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def subject_access_review(api_client: Any) -> Any:
    """A function asking the API server one SubjectAccessReview (for :class:`AccessReviewCache`)."""
    from kubernetes import client

    api: Any = client.AuthorizationV1Api(api_client)

    def ask(
        user: str, groups: tuple[str, ...], verb: str, group: str, resource: str, name: str, namespace: str
    ) -> bool:
        body = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=list(groups),
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    group=group,
                    resource=resource,
                    name=name,
                    namespace=namespace or None,
                ),
            )
        )
        result = api.create_subject_access_review(body, _request_timeout=5)
        return bool(result.status.allowed)

    return ask


def subject_access_review_full(api_client: Any) -> Any:
    """A function asking one whole SubjectAccessReview for the CEL ``authorizer``: the user with
    uid, groups and extra, and either a non-resource path or resource attributes with subresource
    and selectors; the answer keeps ``allowed``, ``reason`` and ``evaluationError``."""
    from kubernetes import client

    from webhook.cel import k8s_authz

    api: Any = client.AuthorizationV1Api(api_client)

    def ask(attributes: Any) -> Any:
        spec: dict[str, Any] = {"user": attributes.user, "groups": list(attributes.groups)}
        if attributes.uid:
            spec["uid"] = attributes.uid
        if attributes.extra:
            spec["extra"] = {key: list(values) for key, values in attributes.extra}
        if not attributes.resource_request:
            spec["non_resource_attributes"] = client.V1NonResourceAttributes(path=attributes.path,
                                                                             verb=attributes.verb)
        else:
            resource: dict[str, Any] = {
                "verb": attributes.verb, "group": attributes.group, "version": attributes.version,
                "resource": attributes.resource, "subresource": attributes.subresource or None,
                "namespace": attributes.namespace or None, "name": attributes.name or None,
            }
            if attributes.field_selector:
                resource["field_selector"] = client.V1FieldSelectorAttributes(raw_selector=attributes.field_selector)
            if attributes.label_selector:
                resource["label_selector"] = client.V1LabelSelectorAttributes(raw_selector=attributes.label_selector)
            spec["resource_attributes"] = client.V1ResourceAttributes(**resource)
        body = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(**spec))
        status = api.create_subject_access_review(body, _request_timeout=5).status
        return k8s_authz.Decision(allowed=bool(status.allowed), reason=status.reason or "",
                                  error=status.evaluation_error or "")

    return ask
