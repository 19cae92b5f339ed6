"""A Pod is reported once, on its owner, when it is what its owner's template makes.

A Deployment of 50 replicas with a privileged container is one problem, not 51. Kubernetes' own
chain is Deployment -> ReplicaSet -> Pod and CronJob -> Job -> Pod (StatefulSets, DaemonSets,
ReplicationControllers and bare Jobs own Pods directly), through each object's *controller*
``ownerReference``. Objects are evaluated owners first (:data:`webhook.audit.model.RANKS`), so when
an owned object arrives its owner's signature is known.

"What its template makes" is decided on results, not on the spec: a running Pod always differs from
its template (the service-account token volume, default tolerations, a node name, our own
mutations), but those differences rarely change what a policy finds. So an owned object is folded
into its owner when its signature (what its Pods break: policy, rule, outcome, mode, and each
violation's reason and path; see :mod:`webhook.audit.evaluate`) equals its owner's. A Pod with an
extra privileged sidecar, or left over from an older template, breaks something else and is
reported on its own, naming the owner it differs from. ``--all-pods`` folds nothing.

Memory: one small record per owner-kind object seen (uid, signature, where it was reported), equal
signatures shared; never the objects themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.audit import model


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (the ownerReference with ``controller: true``)."""
    metadata = obj.get("metadata")
    references = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    if not isinstance(references, list):
        return None
    for reference in references:
        if isinstance(reference, dict) and reference.get("controller") is True and reference.get("uid"):
            return str(reference["uid"])
    return None


class Owners:
    def __init__(self, *, fold: bool = True) -> None:
        self.fold = fold
        self._known: dict[str, tuple[Any, model.Ref]] = {}
        self._signatures: dict[Any, Any] = {}
        self.folded = 0

    def place(self, obj: Mapping[str, Any], entry: model.Entry) -> None:
        """Decide where ``entry`` is reported (sets ``entry.owner`` or ``entry.differs_from``), and
        remember it when its kind owns others."""
        signature = self._signatures.setdefault(entry.signature, entry.signature)
        entry.signature = signature
        owner_uid = controller_uid(obj)
        reported_as = entry.ref
        if owner_uid is not None:
            known = self._known.get(owner_uid)
            if known is not None:
                owner_signature, owner_reported = known
                if self.fold and owner_signature == signature:
                    entry.owner = owner_reported
                    reported_as = owner_reported
                    self.folded += 1
                else:
                    entry.differs_from = owner_reported
        if entry.ref.kind in model.OWNER_KINDS and entry.ref.uid:
            self._known[entry.ref.uid] = (signature, reported_as)
