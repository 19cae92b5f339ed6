"""``webhook.gotext.quote`` is Go's ``strconv.Quote``: the cases of Go's ``strconv/quote_test.go``
(``quotetests``) and the ones our texts meet (admission webhook names, ``strconv.Atoi`` keys,
Pod Security's annotation values)."""

from __future__ import annotations

import pytest

from webhook import gotext

GO_QUOTETESTS = [
    ("\a\b\f\r\n\t\v", '"\\a\\b\\f\\r\\n\\t\\v"'),
    ("\\", '"\\\\"'),
    (b"abc\xffdef", '"abc\\xffdef"'),
    ("\u263a", '"\u263a"'),
    ("\U0010ffff", '"\\U0010ffff"'),
    ("\x04", '"\\x04"'),
    ("!\u00a0!\u2000!\u3000!", '"!\\u00a0!\\u2000!\\u3000!"'),
    ("\x7f", '"\\x7f"'),
]

OURS = [
    ("a", '"a"'),
    ('say "hi"\n', '"say \\"hi\\"\\n"'),
    ("\x01", '"\\x01"'),
    ("runtime/default", '"runtime/default"'),
    ("läuft \u200b", '"läuft \\u200b"'),  # a letter kept, a zero-width space (format, Cf) escaped
    (b"ok", '"ok"'),
]


@pytest.mark.parametrize(("given", "quoted"), GO_QUOTETESTS + OURS, ids=repr)
def test_quote_as_go(given: str | bytes, quoted: str) -> None:
    assert gotext.quote(given) == quoted


def test_every_text_that_quotes_uses_it() -> None:
    from webhook import jsonpointer
    from webhook.cel import k8s_go
    from webhook.emulator import jsonpatch, texts

    assert k8s_go.quote is gotext.quote and texts.go_quote is gotext.quote
    with pytest.raises(jsonpointer.PatchError) as raised:
        jsonpointer.atoi("1\x01")
    assert str(raised.value) == 'strconv.Atoi: parsing "1\\x01": invalid syntax'
    with pytest.raises(jsonpatch.PatchError) as raised_too:
        jsonpatch.apply([{"op": "add", "path": "/a/x\x01", "value": 1}], {"a": []})
    assert str(raised_too.value).endswith('strconv.Atoi: parsing "x\\x01": invalid syntax')
