"""The audit's door to the API server: credentials, discovery, paged lists, report writes.

The only module of :mod:`webhook.audit` that imports ``kubernetes`` (inside functions, like
:mod:`webhook.cluster`), and only for credentials and the HTTP call itself: responses are read as
JSON into dicts, never into the client's models, which drop unknown fields and cost more time than
evaluating the object. A :class:`Cluster` takes any object with the client's ``ApiClient`` calling
convention (``param_serialize`` and ``call_api``, the client from version 34 on; ``call_api`` alone,
older versions), so tests hand it a fake API server.

Lists are paged (``limit``/``continue``): one page is in memory at a time, whatever the size of the
cluster. A continue token that expired mid-list (HTTP 410) is followed by the *inconsistent* token the
API server offers in that answer, as ``kubectl`` does, so the list completes (with objects as they are
now). Every failure becomes one line naming what failed and what to do (:class:`model.Problem`);
the caller skips that kind and goes on.

Reports are written with server-side apply (``PATCH`` as ``application/apply-patch+yaml``, field
manager ``admission-webhook-audit``, ``force``): the audit owns the reports' fields, and the applied
``results`` replace the old ones whole (the CRDs declare no list keys, so the list is atomic), which
removes stale results. Reports this run did not write again (a namespace now clean, a shorter
chunk list) are deleted; they are found by their ``managed-by`` label.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from webhook import cluster, errors
from webhook.audit import model, reports, targets

DEFAULT_TIMEOUT = 60.0
DEFAULT_PAGE_SIZE = 500


class ApiError(Exception):
    """An API call answered with an error status, or not at all (``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str, *, timed_out: bool = False,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.timed_out = timed_out
        self.body = body or {}


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: in-cluster credentials, else the kubeconfig
    (``--kubeconfig``, else ``KUBECONFIG``, else ``~/.kube/config``; ``--context``, else its current
    context). Raises :class:`model.AuditError` naming what is missing."""
    advice = "run it in the cluster, pass --kubeconfig (or set KUBECONFIG), or audit a dump with --from"
    if kubeconfig is None and context is None:
        try:
            return cluster.load_credentials()
        except errors.ClusterUnavailable as exc:
            raise model.AuditError(f"cannot connect to a cluster: {exc}; {advice}") from None
    if kubeconfig is not None and not os.path.isfile(os.path.expanduser(kubeconfig)):
        raise model.AuditError(f"--kubeconfig {kubeconfig}: no such file; {advice}")
    from kubernetes import config as kube_config

    loader: Any = kube_config
    try:
        return loader.new_client_from_config(config_file=kubeconfig, context=context)
    except (loader.ConfigException, OSError, TypeError, ValueError) as exc:
        where = f"context {context!r}" if context else "the kubeconfig"
        raise model.AuditError(f"cannot connect with {where}: {exc}; {advice}") from None


def _send(api_client: Any, method: str, path: str, query: Sequence[tuple[str, str]],
          body: Any, content_type: str | None, timeout: float) -> tuple[int, str, bytes]:
    """One HTTP call through the client's auth and TLS settings: ``(status, reason, body)``."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    if hasattr(api_client, "param_serialize"):
        # kubernetes >= 34 (openapi-generator 7): the REST layer returns every status.
        request = api_client.param_serialize(method, path, query_params=list(query), header_params=headers,
                                             body=body, auth_settings=["BearerToken"])
        response = api_client.call_api(*request, _request_timeout=timeout)
        return int(response.status), str(response.reason or ""), bytes(response.read() or b"")
    from kubernetes.client.exceptions import ApiException

    try:
        response = api_client.call_api(path, method, query_params=list(query), header_params=headers, body=body,
                                       auth_settings=["BearerToken"], _preload_content=False,
                                       _request_timeout=timeout, _return_http_data_only=True)
    except ApiException as exc:
        raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
        return int(exc.status or 0), str(exc.reason or ""), raw
    return int(response.status), str(response.reason or ""), bytes(response.data or b"")


def _status_message(body: dict[str, Any], fallback: str) -> str:
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else fallback


class Cluster:
    """Raw JSON calls to one API server."""

    def __init__(self, api_client: Any, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.api_client = api_client
        self.timeout = timeout

    @property
    def host(self) -> str:
        configuration = getattr(self.api_client, "configuration", None)
        return str(getattr(configuration, "host", "") or "the API server")

    def call(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (), body: Any = None,
             content_type: str | None = None) -> dict[str, Any]:
        """The decoded JSON answer; raises :class:`ApiError` for an error status or no answer."""
        import urllib3

        try:
            status, reason, raw = _send(self.api_client, method, path, query, body, content_type, self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            # NewConnectionError subclasses ConnectTimeoutError (urllib3 2): a refusal is no timeout.
            if isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
                    cause, urllib3.exceptions.NewConnectionError):
                raise ApiError(0, "Timeout", f"no answer within {self.timeout:g}s", timed_out=True) from None
            raise ApiError(0, "Unreachable", f"cannot reach {self.host}: {cause}") from None
        except TimeoutError:
            raise ApiError(0, "Timeout", f"no answer within {self.timeout:g}s", timed_out=True) from None
        except OSError as exc:
            raise ApiError(0, "Unreachable", f"cannot reach {self.host}: {exc}") from None
        try:
            decoded = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            decoded = {}
        body_dict: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        if not 200 <= status < 300:
            raise ApiError(status, reason or str(body_dict.get("reason") or ""),
                           _status_message(body_dict, raw[:200].decode(errors="replace")), body=body_dict)
        return body_dict

    # --- discovery -------------------------------------------------------------------------------

    def resources(self, group: str, version: str) -> dict[str, dict[str, Any]] | None:
        """The resources one group/version serves, by name; ``None`` when it serves none (404)."""
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        try:
            found = self.call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return {str(r["name"]): r for r in found.get("resources") or [] if isinstance(r, dict) and "name" in r}

    def group_versions(self) -> list[tuple[str, str, list[str]]]:
        """Every served ``(group, preferred version, all versions)``, the core group first."""
        core = self.call("GET", "/api")
        found = [("", str(v), [str(v)]) for v in (core.get("versions") or ["v1"])[:1]]
        for group in self.call("GET", "/apis").get("groups") or []:
            versions = [str(v["version"]) for v in group.get("versions") or [] if "version" in v]
            preferred = (group.get("preferredVersion") or {}).get("version") or (versions[0] if versions else "")
            if preferred:
                found.append((str(group["name"]), str(preferred), versions))
        return found

    # --- lists -----------------------------------------------------------------------------------

    def pages(
        self, path: str, *, selector: str | None = None, field_selector: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE, on_expired: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page of a list (the List as decoded: ``items``, ``kind``, ``metadata``)."""
        token = ""
        while True:
            query = [("limit", str(limit))]
            if token:
                query.append(("continue", token))
            if selector:
                query.append(("labelSelector", selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            try:
                page = self.call("GET", path, query=query)
            except ApiError as exc:
                fresh = (exc.body.get("metadata") or {}).get("continue") if exc.status == 410 else None
                if token and fresh:
                    # The continue token outlived etcd's compaction: go on from where the API server
                    # says, seeing objects as they are now (kubectl's behaviour).
                    token = str(fresh)
                    if on_expired is not None:
                        on_expired()
                    continue
                raise
            yield page
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def apply(self, obj: dict[str, Any], path: str) -> None:
        query = [("fieldManager", reports.FIELD_MANAGER), ("force", "true")]
        self.call("PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml")

    def delete(self, path: str) -> None:
        try:
            self.call("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:  # gone already: what we wanted
                raise


def _path(target: targets.Target, namespace: str | None) -> str:
    base = f"/api/{target.version}" if not target.group else f"/apis/{target.group}/{target.version}"
    if namespace and target.namespaced:
        return f"{base}/namespaces/{urllib.parse.quote(namespace, safe='')}/{target.resource}"
    return f"{base}/{target.resource}"


def _problem(what: str, exc: ApiError, *, doing: str, grant: str, page: int = 0) -> str:
    """One line naming what failed and what to do."""
    if exc.timed_out:
        where = f" (page {page + 1})" if page else ""
        return (f"{what}: {doing} timed out{where}: {exc.message}; retry, or lower --page-size or raise "
                "--request-timeout; the rest of it is skipped")
    if exc.status == 0:
        return f"{what}: {doing} failed: {exc.message}; check the kubeconfig, context and network"
    if exc.status == 401:
        return f"{what}: {doing} refused: the credentials are not accepted (HTTP 401); log in again or renew the token"
    if exc.status == 403:
        return f"{what}: {doing} is forbidden (HTTP 403: {exc.message}); {grant}; skipped"
    if exc.status == 404:
        return (f"{what}: the cluster does not serve it (HTTP 404); check the policy's group and version "
                "against `kubectl api-resources`; skipped")
    if exc.status == 410:
        return f"{what}: the list expired (HTTP 410: {exc.message}); run again; the rest of it is skipped"
    return f"{what}: {doing} failed: {exc}; skipped"


class Source:
    """The cluster as an audit source: Namespaces first (their labels), then each target resource,
    owners first, one page at a time."""

    def __init__(
        self,
        live: Cluster,
        wanted: Sequence[targets.Target],
        wildcards: Sequence[targets.Wildcard] = (),
        *,
        namespace: str | None = None,
        selector: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.cluster = live
        self.targets = list(wanted)
        self.wildcards = list(wildcards)
        self.namespace = namespace
        self.selector = selector
        self.page_size = page_size
        self.namespaces: dict[str, model.Namespace] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.total: int | None = None
        self.failed: set[tuple[str, str]] = set()
        """(apiVersion, kind) of resources that could not be listed whole: their old report
        results are carried over instead of dropped."""
        self.listed: list[targets.Target] = []

    def prepare(self, on_object: Callable[[], None] | None = None) -> None:
        """List the Namespaces and resolve the targets with discovery. Raises
        :class:`model.AuditError` when the API server cannot be reached at all."""
        self._list_namespaces()
        self.listed = self._discover()

    def _list_namespaces(self) -> None:
        field_selector = f"metadata.name={self.namespace}" if self.namespace else None
        try:
            for page in self.cluster.pages("/api/v1/namespaces", field_selector=field_selector,
                                           limit=self.page_size):
                for item in page.get("items") or []:
                    found = model.Namespace.of(item)
                    self.namespaces[found.name] = found
        except ApiError as exc:
            if exc.status == 0 and not exc.timed_out:
                raise model.AuditError(f"cannot list Namespaces: {exc.message}; check the kubeconfig, "
                                       "context and network") from None
            if exc.status == 401:
                raise model.AuditError("the API server does not accept these credentials (HTTP 401); log in "
                                       "again or renew the token") from None
            self.problems.append(_problem(
                "Namespace (v1 namespaces)", exc, doing="list",
                grant="grant `list` on namespaces; without their labels, namespaceSelector scopes do not match"))

    def _discover(self) -> list[targets.Target]:
        """Targets with their kinds and scopes from discovery; unserved ones reported and dropped;
        wildcard rules expanded to every listable resource they name."""
        cache: dict[tuple[str, str], dict[str, dict[str, Any]] | None] = {}

        def served(group: str, version: str) -> dict[str, dict[str, Any]] | None:
            if (group, version) not in cache:
                cache[(group, version)] = self.cluster.resources(group, version)
            return cache[(group, version)]

        found: dict[tuple[str, str], targets.Target] = {}
        try:
            for target in self.targets:
                resources = served(target.group, target.version)
                info = (resources or {}).get(target.resource)
                if info is None:
                    self.problems.append(
                        f"{target.describe()}: the cluster does not serve it; {', '.join(target.wanted_by)} "
                        "appl" + ("ies" if len(target.wanted_by) == 1 else "y") + " to it: check the group and "
                        "version against `kubectl api-resources`; skipped")
                    continue
                found[(target.group, target.resource)] = targets.Target(
                    target.group, target.version, target.resource, str(info.get("kind") or target.kind),
                    bool(info.get("namespaced")), target.wanted_by)
            if self.wildcards:
                self._expand(found, served)
        except ApiError as exc:
            self.problems.append(_problem("discovery", exc, doing="reading the API groups",
                                          grant="discovery is normally open to every authenticated user"))
            return []
        return sorted(found.values(), key=lambda t: (t.rank, t.group, t.resource))

    def _expand(self, found: dict[tuple[str, str], targets.Target],
                served: Callable[[str, str], dict[str, dict[str, Any]] | None]) -> None:
        groups = self.cluster.group_versions()
        for rule in self.wildcards:
            for group, preferred, versions in groups:
                if "*" not in rule.groups and group not in rule.groups:
                    continue
                chosen = [preferred] if "*" in rule.versions else [v for v in versions if v in rule.versions]
                for version in chosen:
                    for name, info in (served(group, version) or {}).items():
                        if "/" in name or "list" not in (info.get("verbs") or []):
                            continue
                        if "*" not in rule.resources and name not in rule.resources:
                            continue
                        key = (group, name)
                        if key in found:
                            continue
                        found[key] = targets.Target(group, version, name, str(info.get("kind") or ""),
                                                    bool(info.get("namespaced")), (rule.policy,))

    def items(self) -> Iterator[model.Item]:
        for target in self.listed:
            if self.namespace and not target.namespaced:
                continue  # --namespace: cluster-scoped objects belong to no namespace
            what = target.describe()
            where = f" in namespace {self.namespace}" if self.namespace and target.namespaced else ""
            page_number = 0
            expired: list[int] = []
            try:
                for page in self.cluster.pages(_path(target, self.namespace), selector=self.selector,
                                               limit=self.page_size, on_expired=functools.partial(expired.append, 1)):
                    kind = str(page.get("kind") or "")
                    kind = kind[: -len("List")] if kind.endswith("List") else target.kind
                    for item in page.get("items") or []:
                        if isinstance(item, dict):
                            item.setdefault("apiVersion", target.api_version)
                            item.setdefault("kind", kind or target.kind)
                            yield model.Item(item, target.resource, target.namespaced)
                    page_number += 1
            except ApiError as exc:
                self.failed.add((target.api_version, target.kind))
                self.problems.append(_problem(
                    what + where, exc, doing="list", page=page_number,
                    grant=f"grant `list` on {target.resource}"
                    + (f" in API group {target.group}" if target.group else "")
                    + " (deploy/components/audit's ClusterRole lists what the default policies need)"))
            if expired:
                self.notes.append(f"{what}: the list took longer than etcd keeps its snapshot; it went on with "
                                  "objects as they were later (one changed meanwhile may be seen twice or not at all)")

    def close(self) -> None:
        """Nothing to release: pages are not kept."""


# --- reports -------------------------------------------------------------------------------------


def _report_problem(api: reports.Api, exc: ApiError, doing: str) -> str:
    kinds = f"{api.kind}/{api.cluster_kind} ({api.api_version})"
    if exc.status == 404:
        other = reports.OPENREPORTS if api is reports.WGPOLICY else reports.WGPOLICY
        return (f"cannot write {kinds}: the cluster does not serve them (the CRD is not installed); install "
                f"the CRDs (see docs/audit.md) or use --report-api {other.name}")
    if exc.status == 403:
        return (f"cannot {doing} {kinds}: forbidden (HTTP 403: {exc.message}); grant get, list, create, patch "
                "and delete on them (deploy/components/audit's ClusterRole)")
    return _problem(kinds, exc, doing=doing, grant="")


class Writer:
    """Writes one run's reports: finds the managed reports in the cluster first (to carry results
    over and to delete the stale ones), then applies, then deletes."""

    def __init__(self, live: Cluster, api: reports.Api, *, namespace: str | None, cluster_scope: bool,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.cluster = live
        self.api = api
        self.namespace = namespace
        self.cluster_scope = cluster_scope
        self.page_size = page_size
        self.existing: set[tuple[str, str]] = set()
        self.written: set[tuple[str, str]] = set()
        self.lines: list[str] = []

    def read_existing(self, carry_kinds: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """Names of the managed reports in scope, and the results about ``carry_kinds`` they hold.
        Raises :class:`model.Problem` when the report API is not served or not allowed."""
        selector = "=".join(reports.MANAGED_BY)
        paths = [self.api.path(namespace=self.namespace, cluster=False)]
        if self.cluster_scope:
            paths.append(self.api.path(namespace=None, cluster=True))
        carried: dict[str, list[dict[str, Any]]] = {}
        for path in paths:
            try:
                for page in self.cluster.pages(path, selector=selector, limit=self.page_size):
                    items = page.get("items") or []
                    for item in items:
                        metadata = item.get("metadata") or {}
                        self.existing.add((str(metadata.get("namespace") or ""), str(metadata.get("name"))))
                    for namespace, found in reports.carry(items, carry_kinds).items():
                        carried.setdefault(namespace, []).extend(found)
            except ApiError as exc:
                raise model.Problem(_report_problem(self.api, exc, "list")) from None
        return carried

    def write(self, report: dict[str, Any]) -> str | None:
        """Apply one report; the problem when it was refused. A missing or forbidden report API
        stops the writing (:class:`model.Problem`); one refused report does not, and the copy in
        the cluster is kept (not deleted as stale)."""
        metadata = report["metadata"]
        namespace = metadata.get("namespace")
        path = self.api.path(namespace=namespace, cluster=namespace is None, name=metadata["name"])
        key = (str(namespace or ""), str(metadata["name"]))
        try:
            self.cluster.apply(report, path)
        except ApiError as exc:
            if exc.status in (403, 404):
                raise model.Problem(_report_problem(self.api, exc, "write")) from None
            self.written.add(key)
            where = f"{namespace}/" if namespace else ""
            return (f"{report['kind']} {where}{metadata['name']}: not written: {exc}; the previous one is kept")
        what = "configured" if key in self.existing else "created"
        self.written.add(key)
        where = f"{namespace}/" if namespace else ""
        summary = report["summary"]
        self.lines.append(f"{report['kind']} {where}{metadata['name']} {what} ({summary['fail']} fail, "
                          f"{summary['warn']} warn, {summary['pass']} pass, {summary['error']} error, "
                          f"{summary['skip']} skip)")
        return None

    def delete_stale(self) -> None:
        for namespace, name in sorted(self.existing - self.written):
            path = self.api.path(namespace=namespace or None, cluster=not namespace, name=name)
            try:
                self.cluster.delete(path)
            except ApiError as exc:
                raise model.Problem(_report_problem(self.api, exc, "delete")) from None
            kind = self.api.kind if namespace else self.api.cluster_kind
            self.lines.append(f"{kind} {namespace + '/' if namespace else ''}{name} deleted (nothing left to report)")
