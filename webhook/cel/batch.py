"""Many expressions of one review in one cel-cpp call, with the results each would give alone.

Why: a call into cel-cpp costs about 1.4 µs before any work, and our Python around each result
about as much again; the Pod Security rules written as admission policies make 24 of them per Pod.
The policies without params and without composited variables all see the same values, so
:mod:`webhook.cel.validating` evaluates them on one shared activation; their expressions can then run
as one list expression ``[(e1), (e2), ...]``: one call, the same object conversion, and element ``i``
is exactly what ``e_i`` gives alone (CEL has no side effects and each element is the expression as
written, on the same variables).

What keeps the answers the API server's:

* Nothing is taken from a batch that failed. A list literal fails when any element fails, so an
  error anywhere means every expression of the batch runs alone afterwards and reports its own
  error (or none), with its own iteration budget: a batch that hits the budget is just a batch that
  failed.
* Expressions that mention ``authorizer`` are never batched: their checks ask the cluster.
* Match conditions go first, in a batch of their own; only the validations of policies whose
  conditions all hold go into the second, and into the third only the messageExpressions of the
  failing validations whose every message is shown: those of policies with a Warn binding
  (compiled without ``authorizer``, as messageExpressions are). A Deny or Audit decision shows only
  the first one's message, which :mod:`webhook.cel.validating` computes alone when it reads it. A
  policy the request opts out of is not evaluated further, as upstream, and cannot fail the
  others' batch.

Subexpressions the members repeat word for word (the Pod Security rules all join the three container
lists: ``(object.spec.?initContainers.orValue([]) + ...)``) are computed once for the batch
(:func:`webhook.cel.rewrite.hoist_common`): the list becomes ``[(group)].map(hoisted0, [...])[0]``,
with each occurrence replaced by the name. Only groups whose free names are the activation's own
variables are bound, never in a member that rebinds one of them; CEL has no side effects, so a
member computes the same value either way, and a group that fails fails the batch, whose members
then run alone; the list is then compiled again as written (a group that only some members
guard, ``has(x.a) && (x.a.b + 1) > 1``, would otherwise fail the batch on every such object).
On the Pod Security set this took the validations' batch from 56 to 42 µs and the messages' from
36 to 30.

Cost and bounds. A batch is compiled the second time its list of expressions is seen (a few
milliseconds for the 19 Pod Security policies; the first review of a kind runs unbatched, so a
one-off list never pays for compiling) and kept for the policy set's life. A compiled batch holds
about 85 bytes per character of its members' source (0.54 MB for the Pod Security validations), so
the batches of a policy set share a budget of :data:`SOURCE_BUDGET` characters: once it is spent,
lists not yet compiled run unbatched (slower by the per-call cost, never by a compile per review).
The lists a policy set produces are few in practice (which policies match a kind of request and
which of their conditions hold).
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from webhook.cel import rewrite, runtime

CACHE_LIMIT = 256
"""Plans (lists of policies) remembered per policy set (dropped all at once when full: a plan is a
few lists of references, cheap to rebuild)."""
SOURCE_BUDGET = 128 * 1024
"""Characters of expression source the compiled batches of one policy set may hold (about 11 MB)."""
SIGHTINGS = 2
"""Times a list must be seen before its batch is compiled."""
SEEN_LIMIT = 4096
"""Lists counted while not compiled (the counts are dropped all at once when full)."""
HOIST_ROOTS = frozenset({"object", "oldObject", "request", "namespaceObject"})
"""The variables a subexpression computed once for a whole batch may use: the same for every
member (``params`` and ``variables`` are not, and their policies are not batched)."""


class _Named(Protocol):
    @property
    def program(self) -> runtime.Program: ...


class _Validation(Protocol):
    @property
    def program(self) -> runtime.Program: ...

    @property
    def message_program(self) -> runtime.Program | None: ...


class _Policy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def match_conditions(self) -> Sequence[_Named]: ...

    @property
    def validations(self) -> Sequence[_Validation]: ...

    @property
    def audit_annotations(self) -> Sequence[Any]: ...


class PolicyPlan(NamedTuple):
    """One policy of a :class:`Plan`."""

    name: str
    conditions: tuple[str, ...]
    """The sources of its match conditions: its validations are batched once all are true."""
    validations: list[runtime.Program]
    """Its validations to batch: each source once, none asking the authorizer."""
    settles: bool
    """Whether batch results alone can show it decides nothing: no audit annotations to compute
    and no validation left out of the batch."""
    checks: tuple[str, ...]
    """The sources of all its validations, in order (their indexes are the decisions')."""


class Outcome(NamedTuple):
    """What the batches' results alone show about the policies of a :class:`Plan`."""

    passing: frozenset[str]
    """The policies that decide nothing: a condition false (the policy does not apply, whatever
    the others give, as upstream's matcher), or every condition and validation true (and nothing
    left to compute: :attr:`PolicyPlan.settles`)."""
    failing: Mapping[str, tuple[int, ...]]
    """Per policy whose conditions are all true and whose validations all gave a boolean, some
    false: the indexes of the false ones (each a Deny decision, whatever the failurePolicy)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What to batch for one list of policies."""

    conditions: list[runtime.Program]
    """Every distinct match condition, for the first batch."""
    policies: list[PolicyPlan]
    """Per policy: what the second batch takes of it, and whether :meth:`outcome` may settle it."""
    messages: list[tuple[str, str, runtime.Program]]
    """(policy name, validation source, its messageExpression) for the third batch, of the
    validations that fail and whose messages are all shown."""

    condition_key: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    """The conditions' sources: the first batch's key in :class:`Batches`."""
    _admitted: dict[tuple[bool, ...], tuple[list[runtime.Program], tuple[str, ...]]] = dataclasses.field(
        init=False, repr=False, compare=False)
    """The second batch and its key, by which conditions hold (few combinations: on a create
    the same every time)."""
    _outcomes: dict[tuple[tuple[str, ...], tuple[int, ...]], Outcome] = dataclasses.field(
        init=False, repr=False, compare=False)
    """:meth:`outcome`'s answers by the memo's sources and the identities of their results."""
    _settling: list[tuple[str, frozenset[str], frozenset[str]]] = dataclasses.field(
        init=False, repr=False, compare=False)
    """Per policy that :meth:`outcome` may settle: its name, its conditions' sources, and its
    conditions' and validations' sources together."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "condition_key", tuple(program.source for program in self.conditions))
        object.__setattr__(self, "_admitted", {})
        object.__setattr__(self, "_outcomes", {})
        object.__setattr__(self, "_settling", [
            (policy.name, frozenset(policy.conditions),
             frozenset(policy.conditions).union(program.source for program in policy.validations))
            for policy in self.policies if policy.settles])

    def admitted(self, memo: Mapping[str, runtime.Result]) -> tuple[list[runtime.Program], tuple[str, ...]]:
        """The second batch, for ``memo`` holding the conditions' results (and nothing else):
        the validations of the policies whose conditions all hold, each source once, none that
        is a condition (known already); and its key."""
        true = runtime.TRUE
        holding = tuple([memo.get(source) is true for source in self.condition_key])
        found = self._admitted.get(holding)
        if found is None:
            held = {source for source, holds in zip(self.condition_key, holding, strict=True) if holds}
            programs = [program for program in distinct(
                program for policy in self.policies if held.issuperset(policy.conditions)
                for program in policy.validations) if program.source not in self.condition_key]
            if len(self._admitted) >= CACHE_LIMIT:
                self._admitted.clear()
            found = self._admitted[holding] = (programs, tuple(program.source for program in programs))
        return found

    def outcome(self, memo: Mapping[str, runtime.Result]) -> Outcome:
        """What ``memo``'s results alone show (:class:`Outcome`): the policies that decide nothing,
        and the failed validations of those whose results are all in and all booleans. Anything
        else (an error, an expression not batched) needs the policy's full evaluation, which
        builds the decisions.

        The answer depends only on which results are missing, false or not true: the same for
        every review of the same outcome, so it is worked out once per outcome, kept by the
        sources in the memo and the identities of their results. The results are as a rule the
        shared ``TRUE`` and ``FALSE``, whose identities stand for their values; any other result
        counts as "not true, not false" whatever it holds, so an identity reused by another such
        result after the first is gone still gives the right answer (its entries only take room
        in the bounded memo)."""
        key = (tuple(memo), tuple(map(id, memo.values())))
        found = self._outcomes.get(key)
        if found is None:
            found = self._work_out(memo)
            if len(self._outcomes) >= CACHE_LIMIT:
                self._outcomes.clear()
            self._outcomes[key] = found
        return found

    def _work_out(self, memo: Mapping[str, runtime.Result]) -> Outcome:
        true, false = runtime.TRUE, runtime.FALSE
        untrue = frozenset(itertools.compress(memo, map(operator.is_not, memo.values(), itertools.repeat(true))))
        falses = frozenset([source for source in untrue if memo[source] is false])
        known = frozenset(memo)
        passing = frozenset(name for name, conditions, sources in self._settling
                            if not conditions.isdisjoint(falses) or (sources <= known and sources.isdisjoint(untrue)))
        failing: dict[str, tuple[int, ...]] = {}
        for policy in self.policies:
            if policy.name in passing or any(memo.get(source) is not true for source in policy.conditions):
                continue
            results = [memo.get(source) for source in policy.checks]
            if all(result is true or result is false for result in results):
                indexes = tuple(index for index, result in enumerate(results) if result is false)
                if indexes:
                    failing[policy.name] = indexes
        return Outcome(passing, MappingProxyType(failing))


_NAME = operator.attrgetter("name")
_BOOL = frozenset({bool})
_BOOL_RESULTS = {True: runtime.TRUE, False: runtime.FALSE}


class Batches:
    """The combined programs of one policy set, by the sources of their members."""

    __slots__ = ("_compiled", "_hoisted", "_plans", "_plans_of", "_seen", "budget", "declared")

    def __init__(self, declared: runtime.Declarations) -> None:
        self.declared = declared
        """What the members were compiled with; the batch is compiled with the same."""
        self.budget = SOURCE_BUDGET
        """Characters of source still available for new batches."""
        self._compiled: dict[tuple[str, ...], runtime.Program | None] = {}
        self._hoisted: set[tuple[str, ...]] = set()
        """Lists compiled with subexpressions computed once, until such a batch first fails."""
        self._plans: dict[tuple[str, ...], Plan] = {}
        self._plans_of: dict[int, tuple[tuple[_Policy, ...], Plan]] = {}
        """:meth:`plan`'s answers for tuples of policies, by the tuple's identity (kept with it):
        the tuples a policy set keeps per kind of request are asked for on every review."""
        self._seen: dict[tuple[str, ...], int] = {}

    def plan(self, policies: Sequence[_Policy]) -> Plan:
        """The batches' members for these policies (by name: unique in a policy set), leaving out
        expressions that ask the authorizer."""
        if type(policies) is tuple:
            known = self._plans_of.get(id(policies))
            if known is not None and known[0] is policies:
                return known[1]
            plan = self.plan(list(policies))
            if len(self._plans_of) >= CACHE_LIMIT:
                self._plans_of.clear()
            self._plans_of[id(policies)] = (policies, plan)
            return plan
        key = tuple(map(_NAME, policies))
        found = self._plans.get(key)
        if found is None:
            found = Plan(
                distinct(condition.program for policy in policies for condition in policy.match_conditions),
                [PolicyPlan(policy.name, tuple(condition.program.source for condition in policy.match_conditions),
                            distinct(validation.program for validation in policy.validations),
                            not policy.audit_annotations
                            and not any(validation.program.asks_authorizer for validation in policy.validations),
                            tuple(validation.program.source for validation in policy.validations))
                 for policy in policies],
                [(policy.name, validation.program.source, validation.message_program) for policy in policies
                 for validation in policy.validations if validation.message_program is not None],
            )
            if len(self._plans) >= CACHE_LIMIT:
                self._plans.clear()
            self._plans[key] = found
        return found

    def run(self, programs: Sequence[runtime.Program], bound: Any, memo: MutableMapping[str, runtime.Result],
            key: tuple[str, ...] | None = None) -> bool:
        """Evaluate ``programs`` (none asking the authorizer, none in ``memo`` yet) on ``bound`` in
        one call and put each one's result into ``memo`` under its source; False (and
        ``memo`` untouched) when the batch failed or cannot be compiled. ``key``: the programs'
        sources, when the caller has them already."""
        if key is None:
            key = tuple(program.source for program in programs)
        try:
            combined = self._compiled[key]
        except KeyError:
            combined = self._admit(key)
        if combined is None:
            return False
        result = runtime.evaluate(combined, bound)
        values = result.value
        if result.error is not None or not isinstance(values, list) or len(values) != len(programs):
            if key in self._hoisted:
                self._unhoist(key)
            return False
        if set(map(type, values)) <= _BOOL:  # as a rule: conditions and validations give booleans
            memo.update(zip(key, map(_BOOL_RESULTS.__getitem__, values), strict=True))
            return True
        true, false = runtime.TRUE, runtime.FALSE
        for source, value in zip(key, values, strict=True):
            memo[source] = true if value is True else false if value is False else runtime.Result(value=value)
        return True

    def _admit(self, key: tuple[str, ...]) -> runtime.Program | None:
        """The batch for a list not compiled yet: compiled on its :data:`SIGHTINGS`-th sighting
        if the budget allows, else ``None`` (the members run alone)."""
        seen = self._seen.get(key, 0) + 1
        size = sum(len(source) for source in key)
        if seen < SIGHTINGS or size > self.budget:
            if len(self._seen) >= SEEN_LIMIT:
                self._seen.clear()
            self._seen[key] = seen
            return None
        self._seen.pop(key, None)
        combined = self._compile(key, hoist=True)
        if combined is None:
            combined = self._compile(key, hoist=False)  # a hoisted name the parser took amiss
        self.budget -= size  # a refused list is remembered too, and must not grow without bound
        self._compiled[key] = combined
        return combined

    def _compile(self, key: tuple[str, ...], *, hoist: bool) -> runtime.Program | None:
        text, hoisted = _combined(key, hoist=hoist)
        try:
            combined = runtime.compile(text, declared=self.declared, returns=None, reads=False)
        except runtime.CompileError:
            return None  # beyond the parser's limits: the members run alone, for good
        if hoisted:
            self._hoisted.add(key)
        return combined

    def _unhoist(self, key: tuple[str, ...]) -> None:
        """A batch with subexpressions computed once failed: perhaps one of them, which a member
        only computes behind a guard (``has(x.a) && (x.a.b + 1) > 1``). From now on the list runs
        as written, so objects that fail the guard cost one call again, not one per member."""
        self._hoisted.discard(key)
        self._compiled[key] = self._compile(key, hoist=False)


def combined_source(sources: Sequence[str], *, hoist: bool = True) -> str:
    """One list expression whose element ``i`` is ``sources[i]``, with the subexpressions several
    members repeat computed once (:func:`webhook.cel.rewrite.hoist_common`) unless ``hoist`` is
    False. Each member on its own lines: a trailing ``//`` comment cannot swallow the separator."""
    return _combined(sources, hoist=hoist)[0]


def _combined(sources: Sequence[str], *, hoist: bool) -> tuple[str, bool]:
    """:func:`combined_source`, and whether any subexpression is computed once in it."""
    bindings, members = rewrite.hoist_common(sources, HOIST_ROOTS) if hoist else ([], list(sources))
    text = "[" + ",".join(f"(\n{source}\n)" for source in members) + "]"
    for name, group in reversed(bindings):
        text = f"[\n{group}\n].map({name}, {text})[0]"
    return text, bool(bindings)


def distinct(programs: Iterable[runtime.Program]) -> list[runtime.Program]:
    """Each source once, in first-seen order, without those that ask the authorizer."""
    found: dict[str, runtime.Program] = {}
    for program in programs:
        if not program.asks_authorizer and program.source not in found:
            found[program.source] = program
    return list(found.values())
