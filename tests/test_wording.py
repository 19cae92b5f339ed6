"""Message quoting: the fast path must quote exactly as JSON does."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from webhook.validators import wording


@given(st.text())
def test_quote_is_json_quoting(text: str) -> None:
    assert wording.quote(text) == json.dumps(text, ensure_ascii=False)


def test_non_strings_are_quoted_by_their_text() -> None:
    assert wording.quote(3) == '"3"'
    assert wording.quote_all(["a", None]) == '"a", "None"'


def test_shape_helpers_treat_wrong_types_as_unset() -> None:
    assert wording.as_dict([1]) == {}
    assert wording.strings(["a", 1, None, "b"]) == ["a", "b"]
    assert wording.strings("ab") == []
