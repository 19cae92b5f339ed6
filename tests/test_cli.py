"""The command line: subcommands are discovered, serve flags win over WEBHOOK_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook import cli, errors
from webhook.commands import serve


def test_every_subcommand_is_registered() -> None:
    parser = cli.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    assert {"serve", "certs", "register", "unregister", "review", "simulate", "experiment"} <= set(choices)


def test_environment_sets_serve_options_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_PORT", "9443")
    monkeypatch.setenv("WEBHOOK_LOG_FORMAT", "console")
    monkeypatch.setenv("WEBHOOK_SET", '["podSecurity.level=restricted"]')
    args = cli.build_parser().parse_args(["serve", "--port", "10443"])
    settings = serve.settings_from(args)
    assert settings.port == 10443  # the flag
    assert settings.log_format == "console"  # the environment
    assert settings.set == ("podSecurity.level=restricted",)
    assert settings.cert == Path("certs/tls.crt") and settings.host == "127.0.0.1"  # defaults


def test_invalid_serve_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_PORT", "99999")
    args = cli.build_parser().parse_args(["serve"])
    with pytest.raises(errors.WebhookError, match=r"invalid serve settings: --port \(or WEBHOOK_PORT\): Input should be less than or equal to 65535"):
        serve.settings_from(args)


def test_serve_with_broken_policies_exits_2_with_the_file_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\npodSecurity:\n  level: strict\n")
    from webhook import certs

    certs.ensure(tmp_path / "certs", service="admission-webhook", namespace="admission-webhook", hosts=["localhost"])
    code = cli.main(["serve", "--policies", str(tmp_path), "--port", "0",
                     "--cert", str(tmp_path / "certs" / "tls.crt"), "--key", str(tmp_path / "certs" / "tls.key")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'p.yaml'}:4: podSecurity.level: Input should be 'privileged', 'baseline' or 'restricted'" in err


def test_variable_names_match_whatever_their_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("webhook_Max_Body_Bytes", "4096")
    monkeypatch.setenv("WEBHOOK_POLICIES", '["a", "b"]')
    monkeypatch.setenv("WEBHOOK_NOT_A_SETTING", "ignored")  # as pydantic-settings ignored it
    settings = serve.settings_from(cli.build_parser().parse_args(["serve"]))
    assert settings.max_body_bytes == 4096 and settings.policies == (Path("a"), Path("b"))


def test_serve_leaves_out_pydantic_settings_and_the_frozenlist_extension() -> None:
    """Each was a megabyte of every worker's memory (see webhook.config, webhook.commands.serve)."""
    import os
    import subprocess
    import sys

    script = (
        "import sys; from webhook.commands import serve; import aiohttp.web, frozenlist; "
        "print('pydantic_settings' in sys.modules, frozenlist.FrozenList.__module__)"
    )
    env = {key: value for key, value in os.environ.items() if key != "FROZENLIST_NO_EXTENSIONS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.split() == ["False", "frozenlist"]
