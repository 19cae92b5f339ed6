"""CEL ``matchConditions``, evaluated on the same runtime as admission policies (:mod:`webhook.cel`).

From matchconditions/matcher.go: every condition is evaluated; any ``false`` skips the webhook at
once (even if others errored); otherwise an evaluation error makes the request fail under
``failurePolicy: Fail`` (a Forbidden error, see ``generic.ShouldCallHook``) and skips the webhook
under ``Ignore``. Variables are ``object``, ``oldObject`` and ``request``; ``authorizer`` needs a
live authorizer, so an expression using it fails to evaluate with a message saying so, and then
follows ``failurePolicy`` like any evaluation error. Compile errors and runtime errors read as
cel-go's (``compilation failed: ERROR: <input>:1:8: ...``, ``no such key: foo``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from webhook.cel import runtime

AUTHORIZER_UNSUPPORTED = "the emulator does not support the authorizer variable (it needs a live authorizer)"
_AUTHORIZER = re.compile(r"\bauthorizer\b")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_DECLARED = runtime.Declarations(params=False, authorizer=True)


class Condition(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def expression(self) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    matches: bool
    error: str | None = None
    """Set only when the request must fail (failurePolicy Fail)."""
    failed_condition: str | None = None
    """The condition that evaluated to false, for the report."""
    ignored_error: str | None = None
    """The evaluation error that skipped the webhook under failurePolicy Ignore, for the report."""


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> runtime.Program:
    return runtime.compile(expression, declared=_DECLARED, returns=("BOOL",))


def compile_error(expression: str) -> str | None:
    """Why ``expression`` does not compile (the API server refuses such a configuration), or None.
    The text follows ``compilation failed: `` in the API server's message."""
    if uses_authorizer(expression):
        return None  # it compiles against the API server's authorizer type, which we do not model
    try:
        _program(expression)
    except runtime.CompileError as exc:
        return str(exc).removeprefix("compilation failed: ")
    return None


def uses_authorizer(expression: str) -> bool:
    return _AUTHORIZER.search(_STRINGS.sub("''", expression)) is not None


def evaluate_one(expression: str, variables: dict[str, Any]) -> bool | str:
    """True/False, or the error text ``expression '...' resulted in error: ...`` (cel/filter.go)."""

    def failed(why: str) -> str:
        return f"expression '{expression}' resulted in error: {why}"

    if uses_authorizer(expression):
        return failed(AUTHORIZER_UNSUPPORTED)
    try:
        program = _program(expression)
    except runtime.CompileError as exc:
        return failed(str(exc))
    values = {"object": None, "oldObject": None, "request": {}, "namespaceObject": None, "variables": {},
              "authorizer": None, **variables}
    result = runtime.evaluate(program, runtime.activation(values, declared=_DECLARED))
    if result.error is not None:
        return failed(result.error)
    if not isinstance(result.value, bool):
        return failed(f"must evaluate to bool, got {type(result.value).__name__}")
    return result.value


def match(
    conditions: Sequence[Condition],
    variables: dict[str, Any],
    *,
    failure_policy: Literal["Fail", "Ignore"],
) -> Result:
    errors: list[str] = []
    for condition in conditions:
        outcome = evaluate_one(condition.expression, variables)
        if isinstance(outcome, str):
            errors.append(outcome)
        elif outcome is False:
            return Result(matches=False, failed_condition=condition.name)
    if errors:
        # utilerrors.NewAggregate: one error reads as itself, several as "[a, b]"
        text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        if failure_policy == "Fail":
            return Result(matches=False, error=text)
        return Result(matches=False, ignored_error=text)
    return Result(matches=True)
