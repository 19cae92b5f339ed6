"""CEL ``matchConditions``, evaluated with cel-python the way the API server's matcher decides.

From matchconditions/matcher.go: every condition is evaluated; any ``false`` skips the webhook at
once (even if others errored); otherwise an evaluation error makes the request fail under
``failurePolicy: Fail`` (a Forbidden error, see ``generic.ShouldCallHook``) and skips the webhook
under ``Ignore``. Variables are ``object``, ``oldObject`` and ``request``; ``authorizer`` needs a
live authorizer, so an expression using it fails to evaluate with a message saying so, and then
follows ``failurePolicy`` like any evaluation error.

cel-python's messages are not cel-go's; the common ones (missing keys) are reworded to match.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import celpy
from celpy import adapter, celparser, celtypes, evaluation

AUTHORIZER_UNSUPPORTED = "the emulator does not support the authorizer variable (it needs a live authorizer)"
_AUTHORIZER = re.compile(r"\bauthorizer\b")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


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
def _program(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def compile_error(expression: str) -> str | None:
    """Why ``expression`` does not compile (the API server refuses such a configuration), or None."""
    try:
        _program(expression)
    except celparser.CELParseError as exc:
        return " ".join(str(exc).split()) or "syntax error"
    return None


def uses_authorizer(expression: str) -> bool:
    return _AUTHORIZER.search(_STRINGS.sub("''", expression)) is not None


def _cel_message(exc: Exception) -> str:
    args = exc.args
    first = str(args[0]) if args else str(exc)
    missing = re.match(r"no such member in mapping: '(.*)'$", first)
    if missing:
        return f"no such key: {missing.group(1)}"
    if first == "no such key" and len(args) > 2 and args[2]:
        return f"no such key: {args[2][0]}"
    if first.startswith("undeclared reference to"):
        return first.split(" (in activation", 1)[0]
    return first


def evaluate_one(expression: str, variables: dict[str, Any]) -> bool | str:
    """True/False, or the error text ``expression '...' resulted in error: ...`` (cel/filter.go)."""

    def failed(why: str) -> str:
        return f"expression '{expression}' resulted in error: {why}"

    if uses_authorizer(expression):
        return failed(AUTHORIZER_UNSUPPORTED)
    activation = {name: adapter.json_to_cel(value) for name, value in variables.items()}
    try:
        value = _program(expression).evaluate(activation)
    except evaluation.CELEvalError as exc:
        return failed(_cel_message(exc))
    except Exception as exc:  # noqa: BLE001 - cel-python raises plain Python errors on some bad input
        return failed(str(exc))
    if not isinstance(value, celtypes.BoolType):
        return failed(f"must evaluate to bool, got {type(value).__name__}")
    return bool(value)


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
