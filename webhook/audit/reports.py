"""PolicyReports: ``wgpolicyk8s.io/v1alpha2`` (PolicyReport, ClusterPolicyReport) or the newer
``openreports.io/v1alpha1`` (Report, ClusterReport), one per namespace plus one for cluster-scoped
objects. Pure: objects in, dicts out; :mod:`webhook.audit.live` writes them.

Field names follow the CRDs (kubernetes-sigs/wg-policy-prototypes ``policy-report/apis/
wgpolicyk8s.io/v1alpha2``, openreports/reports-api ``apis/openreports.io/v1alpha1``): each result has
``source``, ``policy``, ``rule``, ``category``, ``severity`` (``high``/``medium``/``low``: the values
both APIs accept), ``timestamp`` (``{seconds, nanos}``, a ``metav1.Timestamp``), ``result``
(``pass``/``fail``/``warn``/``error``/``skip``), ``scored``, ``resources`` (one ObjectReference with
apiVersion, kind, namespace, name, uid), ``message`` and ``properties`` (strings: ``mode``, and
``subject: pods`` when found on the Pods a workload's template makes). ``summary`` counts the results
of each outcome. An openreports Report also names its ``source`` at the top.

Size: etcd stores objects up to 1.5 MiB, so a namespace with many results gets several reports,
``admission-webhook-audit``, ``admission-webhook-audit-2``, ..., each under
:data:`MAX_RESULTS` results and :data:`MAX_BYTES` bytes of results. Every report carries the label
``app.kubernetes.io/managed-by: admission-webhook-audit``, by which the next run finds the ones it
did not write again and deletes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import yaml

from webhook.audit import model

SOURCE = "admission-webhook"
NAME = "admission-webhook-audit"
FIELD_MANAGER = "admission-webhook-audit"
MANAGED_BY = ("app.kubernetes.io/managed-by", "admission-webhook-audit")
LABELS = {MANAGED_BY[0]: MANAGED_BY[1], "app.kubernetes.io/part-of": "admission-webhook"}
MAX_RESULTS = 1000
MAX_BYTES = 900_000

SEVERITY: Mapping[tuple[model.Outcome, str | None], str] = {
    ("fail", "enforce"): "high",
    ("warn", "warn"): "medium",
    ("warn", "audit"): "low",
}
OUTCOMES: tuple[model.Outcome, ...] = ("pass", "fail", "warn", "error", "skip")


@dataclasses.dataclass(frozen=True, slots=True)
class Api:
    """A report API: where its two kinds are served."""

    name: str
    group: str
    version: str
    kind: str
    cluster_kind: str
    plural: str
    cluster_plural: str
    top_level_source: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def path(self, *, namespace: str | None, cluster: bool, name: str | None = None) -> str:
        """``/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>]``; ``namespace=None`` with
        a namespaced kind lists across all namespaces."""
        base = f"/apis/{self.group}/{self.version}"
        if cluster:
            path = f"{base}/{self.cluster_plural}"
        elif namespace is None:
            path = f"{base}/{self.plural}"
        else:
            path = f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


WGPOLICY = Api("wgpolicyk8s", "wgpolicyk8s.io", "v1alpha2", "PolicyReport", "ClusterPolicyReport",
               "policyreports", "clusterpolicyreports", top_level_source=False)
OPENREPORTS = Api("openreports", "openreports.io", "v1alpha1", "Report", "ClusterReport",
                  "reports", "clusterreports", top_level_source=True)
APIS = {api.name: api for api in (WGPOLICY, OPENREPORTS)}


def result(ref: model.Ref, found: model.Result, *, timestamp: int) -> dict[str, Any]:
    """One report result, with only the fields that carry something."""
    entry: dict[str, Any] = {"source": SOURCE, "policy": found.policy}
    if found.rule:
        entry["rule"] = found.rule
    if found.category:
        entry["category"] = found.category
    severity = SEVERITY.get((found.result, found.mode))
    if severity:
        entry["severity"] = severity
    entry["timestamp"] = {"seconds": timestamp, "nanos": 0}
    entry["result"] = found.result
    # "warn: the policy requirements are not met and the policy is not scored" (the CRD).
    entry["scored"] = found.result in ("pass", "fail")
    entry["resources"] = [ref.to_dict()]
    if found.message:
        entry["message"] = found.message
    properties: dict[str, str] = {}
    if found.mode:
        properties["mode"] = found.mode
    if found.subject != "object":
        properties["subject"] = found.subject
    if properties:
        entry["properties"] = properties
    return entry


class Collector:
    """Keeps the results of reported entries, per namespace ("" for cluster-scoped objects): the
    (reference, result) pairs, never the objects; report dicts are built one report at a time.
    Folded entries add nothing (their owner's results stand for them)."""

    def __init__(self) -> None:
        self.namespaces: dict[str, list[tuple[model.Ref, model.Result]]] = {}

    def add(self, entry: model.Entry) -> None:
        if entry.owner is not None:
            return
        self.namespaces.setdefault(entry.ref.namespace, []).extend((entry.ref, r) for r in entry.results)


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    for entry in results:
        counts[entry["result"]] += 1
    return counts


def _chunks(results: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry in results:
        length = len(orjson.dumps(entry))
        if chunk and (len(chunk) >= MAX_RESULTS or size + length > MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += length
    if chunk:
        yield chunk


def name(index: int) -> str:
    return NAME if index == 0 else f"{NAME}-{index + 1}"


def _ordered(pairs: Sequence[tuple[model.Ref, model.Result]], carried: Sequence[dict[str, Any]],
             timestamp: int) -> list[dict[str, Any]]:
    ordered = sorted(pairs, key=lambda p: (p[0].kind, p[0].name, p[0].uid, p[1].policy, p[1].rule))
    found = [result(ref, r, timestamp=timestamp) for ref, r in ordered]
    if carried:
        found.extend(carried)
        found.sort(key=lambda e: (e["resources"][0].get("kind", ""), e["resources"][0].get("name", ""),
                                  e["resources"][0].get("uid", ""), e["policy"], e.get("rule", "")))
    return found


def build(
    namespaces: Mapping[str, Sequence[tuple[model.Ref, model.Result]]],
    api: Api,
    *,
    timestamp: int,
    carried: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> Iterator[dict[str, Any]]:
    """The report objects, one at a time: namespaces in name order, the cluster report last.
    ``carried`` results (kept from the reports in the cluster for kinds this run could not list)
    are added as they were."""
    carried = carried or {}
    for namespace in sorted(set(namespaces) | set(carried), key=lambda n: (n == "", n)):
        results = _ordered(namespaces.get(namespace, ()), carried.get(namespace, ()), timestamp)
        for index, chunk in enumerate(_chunks(results)):
            metadata: dict[str, Any] = {"name": name(index)}
            if namespace:
                metadata["namespace"] = namespace
            metadata["labels"] = dict(LABELS)
            report: dict[str, Any] = {
                "apiVersion": api.api_version,
                "kind": api.kind if namespace else api.cluster_kind,
                "metadata": metadata,
            }
            if api.top_level_source:
                report["source"] = SOURCE
            report["summary"] = summary(chunk)
            report["results"] = chunk
            yield report


def carry(
    existing: Iterable[Mapping[str, Any]], kinds: Iterable[tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """From reports in the cluster, the results about objects of ``kinds`` (apiVersion, kind): what a
    run that could not list those kinds keeps instead of dropping."""
    wanted = set(kinds)
    found: dict[str, list[dict[str, Any]]] = {}
    if not wanted:
        return found
    for report in existing:
        namespace = str((report.get("metadata") or {}).get("namespace") or "")
        for entry in report.get("results") or []:
            resources = entry.get("resources") or [{}]
            if (resources[0].get("apiVersion"), resources[0].get("kind")) in wanted:
                found.setdefault(namespace, []).append(dict(entry))
    return found


def to_yaml(report: Mapping[str, Any]) -> str:
    """One report as a YAML document (``---`` first), for ``kubectl apply --server-side -f -``."""
    return "---\n" + yaml.safe_dump(dict(report), sort_keys=False, default_flow_style=False, width=1000,
                                    allow_unicode=True)
