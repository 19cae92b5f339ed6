"""Globs in scopes and exemptions (namespaces, users, groups, service accounts): the whole value,
case-sensitive, ``fnmatch`` syntax, with a literal name always matching itself. Lists without a
wildcard are decided by equality alone; these hold that to what ``fnmatch`` says."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.policy import scope

CASES = [
    ("kube-system", ("kube-system", "kube-node-lease"), True),
    ("kube-systemx", ("kube-system", "kube-node-lease"), False),
    ("Kube-System", ("kube-system",), False),
    ("kube-public", ("kube-*",), True),
    ("kube", ("kube-*",), False),
    ("team-a", ("team-?",), True),
    ("team-ab", ("team-?",), False),
    ("ns1", ("ns[0-9]",), True),
    ("nsx", ("ns[0-9]",), False),
    ("a[b", ("a[b",), True),  # not a valid set: a literal name with a bracket matches itself
    ("anything", (), False),
    ("system:masters", ["system:masters"], True),  # a list, as a caller may pass
]


@pytest.mark.parametrize(("value", "patterns", "expected"), CASES)
def test_glob_match(value: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert scope.glob_match(value, patterns) is expected
    assert scope.glob_match(value, patterns) is expected  # the kept regex (or none) answers alike


names = st.text(alphabet="ab-*?[]0", max_size=6)


@given(value=st.text(alphabet="ab-0[]", max_size=6), patterns=st.lists(names, max_size=3).map(tuple))
def test_glob_match_is_fnmatchcase_or_equality(value: str, patterns: tuple[str, ...]) -> None:
    expected = any(value == p or fnmatch.fnmatchcase(value, p) for p in patterns)
    assert scope.glob_match(value, patterns) is expected
