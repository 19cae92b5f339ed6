"""Golden replay: a pytest helper that pins the answers policies give to recorded reviews.

A case is a review file and, beside it, the answer expected for it::

    tests/golden/reviews/pod-create-privileged.json            # AdmissionReview, recording or manifest
    tests/golden/reviews/pod-create-privileged.expected.json   # written by UPDATE_GOLDEN=1

The review file holds exactly one review: an AdmissionReview as the API server sends it, a file
written by ``serve --record`` (replayed on the endpoint that answered it: ``/validate/rbac`` runs
the validating chain's ``rbac`` group only), or a manifest (wrapped into a CREATE review as
``review`` does). Everything else runs both chains as the API server calls them (mutating, then
validating on the mutated object; see :mod:`webhook.offline`).

The expected file holds what a reviewer needs to judge an answer: ``allowed``, the ``status``
(code, reason, message) of a denial, ``warnings``, ``auditAnnotations``, and the ``patch`` decoded
(or, with ``result="object"``, the resulting object). A run with ``UPDATE_GOLDEN=1`` rewrites the
expected files; a normal run fails with a unified diff of expected against actual. Use::

    from webhook import catalog, golden

    POLICIES = catalog.load([Path("policies")])

    @golden.parametrize(Path(__file__).parent / "golden")
    def test_golden(case: golden.Case) -> None:
        golden.check(case, policy_set=POLICIES)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from webhook import engine, offline, review

if TYPE_CHECKING:  # pytest is a test extra: imported only when a helper runs under it
    import pytest

ENV = "UPDATE_GOLDEN"
EXPECTED = ".expected.json"
_INPUT_SUFFIXES = (".json", ".yaml", ".yml")
Kept = Literal["patch", "object"]


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    name: str
    """The review file's path below the case directory, without suffix (the test id)."""
    review: Path
    expected: Path

    def __str__(self) -> str:
        return self.name


def updating() -> bool:
    """``True`` when ``UPDATE_GOLDEN`` asks for expected files to be rewritten."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def cases(directory: Path) -> list[Case]:
    """Every review file below ``directory`` (subfolders included), in name order."""
    found = []
    for path in sorted(directory.rglob("*")):
        if (not path.is_file() or path.suffix not in _INPUT_SUFFIXES or path.name.endswith(EXPECTED)
                or path.name.startswith(".")):
            continue
        stem = path.relative_to(directory).with_suffix("")
        found.append(Case(stem.as_posix(), path, path.with_name(path.stem + EXPECTED)))
    return found


def parametrize(directory: Path, *, argname: str = "case") -> pytest.MarkDecorator:
    """``@golden.parametrize(dir)``: one test per case, named after the review file."""
    import pytest

    return pytest.mark.parametrize(argname, cases(directory), ids=str)


def load_case(case: Case, *, shape: offline.Shape | None = None) -> offline.Input:
    import pytest

    inputs, problems = offline.read([str(case.review)], shape=shape or offline.Shape())
    if problems:
        pytest.fail(f"{case.name}: unusable review file: " + "; ".join(problems), pytrace=False)
    if len(inputs) != 1:
        pytest.fail(f"{case.name}: a golden case holds exactly one review, {case.review} holds {len(inputs)}",
                    pytrace=False)
    return inputs[0]


def answer(
    case: Case, *, policy_set: engine.PolicySet, result: Kept = "patch", shape: offline.Shape | None = None,
) -> dict[str, Any]:
    """What the policies answer for ``case`` now, in the expected file's layout."""
    item = load_case(case, shape=shape)
    only, group = offline.endpoint(item.path)
    outcome = offline.evaluate(item, policy_set, only=only, group=group)
    response = outcome.answer["response"]
    data: dict[str, Any] = {
        "endpoint": item.path or "mutate, then validate",
        "allowed": response["allowed"],
    }
    if "status" in response:
        data["status"] = {k: response["status"][k] for k in ("code", "reason", "message")}
    data["warnings"] = response.get("warnings", [])
    if response.get("auditAnnotations"):
        data["auditAnnotations"] = response["auditAnnotations"]
    if result == "object":
        data["object"] = outcome.mutated if outcome.mutated is not None else outcome.submitted
    else:
        data["patch"] = review.decode_patch(outcome.answer)
    return data


def render(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def check(
    case: Case,
    *,
    policy_set: engine.PolicySet,
    result: Kept = "patch",
    shape: offline.Shape | None = None,
    update: bool | None = None,
) -> None:
    """Fail the test when the answer to ``case`` differs from its expected file (or rewrite it)."""
    check_text(render(answer(case, policy_set=policy_set, result=result, shape=shape)), case.expected,
               name=case.name, update=update)


def check_text(actual: str, expected: Path, *, name: str = "", update: bool | None = None) -> None:
    """The same comparison for any text output (the project uses it for ``review``'s output)."""
    import pytest

    if updating() if update is None else update:
        expected.parent.mkdir(parents=True, exist_ok=True)
        if not expected.exists() or expected.read_text(encoding="utf-8") != actual:
            expected.write_text(actual, encoding="utf-8")
        return
    label = name or expected.name
    if not expected.exists():
        pytest.fail(f"{label}: {expected} is missing; run the tests with {ENV}=1 to create it, "
                    "then read it before committing", pytrace=False)
    wanted = expected.read_text(encoding="utf-8")
    if wanted != actual:
        diff = "\n".join(difflib.unified_diff(wanted.splitlines(), actual.splitlines(),
                                              f"expected ({expected})", "actual", lineterm=""))
        pytest.fail(f"{label}: the answer differs from {expected.name} "
                    f"(if the change is intended, rerun with {ENV}=1 and review the diff):\n{diff}",
                    pytrace=False)
