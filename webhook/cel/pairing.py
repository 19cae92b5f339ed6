"""Admission policies paired with their bindings, and the pairs a request's resource may reach:
the part the validating and the mutating policy sets have in common.

A binding names one policy; a pair is evaluated when the policy's ``matchConstraints`` and the
binding's ``matchResources`` both select the request. Their resource rules read only the request
(group, version, resource, subresource, operation, scope and, with ``resourceNames``, the name), so
the pairs they let through are looked up once per kind of request; the selectors, which read the
objects, are checked per review by the caller.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, Protocol, TypeVar

from webhook.cel import documents, matching, params
from webhook.policy import model

CACHE_LIMIT = 1024
"""Kinds of request remembered; callers choose resources and names, so the memo is bounded."""


class _Policy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def match_constraints(self) -> documents.MatchResources: ...


class _Binding(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def policy_name(self) -> str: ...

    @property
    def match_resources(self) -> documents.MatchResources | None: ...


PolicyT = TypeVar("PolicyT", bound=_Policy)
BindingT = TypeVar("BindingT", bound=_Binding)


@dataclasses.dataclass(frozen=True)
class Pairing(Generic[PolicyT, BindingT]):
    """Policies, their bindings and the param objects the bindings may refer to."""

    policies: tuple[PolicyT, ...] = ()
    bindings: tuple[BindingT, ...] = ()
    params: params.Store = dataclasses.field(default_factory=params.Store)
    pairs: tuple[tuple[PolicyT, BindingT], ...] = dataclasses.field(init=False)
    """(policy, binding) in evaluation order: by policy name, then binding name (the API server's
    order comes from a Go map; ours is reproducible). A binding naming no loaded policy pairs with
    nothing, as a binding whose policy does not exist (yet) does upstream."""
    _by_request: dict[tuple[Any, ...], tuple[tuple[PolicyT, BindingT], ...]] = dataclasses.field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_name = {p.name: p for p in self.policies}
        found = [(by_name[b.policy_name], b) for b in self.bindings if b.policy_name in by_name]
        object.__setattr__(self, "pairs", tuple(sorted(found, key=lambda pair: (pair[0].name, pair[1].name))))

    @property
    def empty(self) -> bool:
        return not self.policies

    def candidates(self, ctx: model.ReviewContext) -> tuple[tuple[PolicyT, BindingT], ...]:
        """The pairs whose resource rules match the request, looked up once per kind of request."""
        key = (matching.request_resources(ctx), ctx.operation, bool(ctx.namespace), ctx.name)
        found = self._by_request.get(key)
        if found is None:
            found = tuple(
                (policy, binding) for policy, binding in self.pairs
                if matching.rules_match(policy.match_constraints, ctx, constraints=True)
                and (binding.match_resources is None
                     or matching.rules_match(binding.match_resources, ctx, constraints=False))
            )
            if len(self._by_request) >= CACHE_LIMIT:
                self._by_request.clear()
            self._by_request[key] = found
        return found
