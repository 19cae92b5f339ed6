"""The compiled build and its guard: a checkout never runs compiled code older than its sources."""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webhook import compiled, review
from webhook.policy import model

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
ROOT = Path(__file__).resolve().parents[1]


def _at(path: Path, mtime: float) -> None:
    os.utime(path, (mtime, mtime))


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "mod.py", "sub/__init__.py", "sub/deep.py"):
        (package / name).write_text(f"WHERE = {name!r}\n")
        _at(package / name, 1000)
    return package


def test_nothing_compiled_is_never_stale(tmp_path: Path) -> None:
    package = _package(tmp_path)
    _at(package / "mod.py", 5000)
    assert compiled.stale_source(package) is None


def test_a_source_newer_than_the_oldest_extension_is_named(tmp_path: Path) -> None:
    package = _package(tmp_path)
    (package / f"mod{SUFFIX}").write_bytes(b"")
    (package / "sub" / f"deep{SUFFIX}").write_bytes(b"")
    _at(package / f"mod{SUFFIX}", 2000)
    _at(package / "sub" / f"deep{SUFFIX}", 3000)
    assert compiled.stale_source(package) is None
    _at(package / "sub" / "deep.py", 2500)  # newer than one extension, older than the other
    assert compiled.stale_source(package) == package / "sub" / "deep.py"


def test_the_stamp_of_the_last_build_wins_over_the_extensions_times(tmp_path: Path) -> None:
    """A rebuild that finds an extension up to date keeps its old time; the stamp says when it ran."""
    package = _package(tmp_path)
    (package / f"mod{SUFFIX}").write_bytes(b"")
    _at(package / f"mod{SUFFIX}", 2000)
    _at(package / "mod.py", 3000)
    assert compiled.stale_source(package) == package / "mod.py"
    (package / compiled.STAMP).write_text("")
    _at(package / compiled.STAMP, 4000)
    assert compiled.stale_source(package) is None
    _at(package / "sub" / "__init__.py", 4001)
    assert compiled.stale_source(package) == package / "sub" / "__init__.py"


def test_sources_only_imports_the_python_file_beside_a_broken_extension(tmp_path: Path) -> None:
    """The finder skips extensions: an extension that cannot load (here: not one at all) would fail
    the import, so the import succeeding through the source shows the finder chose it."""
    package = _package(tmp_path)
    (package / f"mod{SUFFIX}").write_bytes(b"not a shared object")
    (package / "sub" / f"deep{SUFFIX}").write_bytes(b"not a shared object")
    code = (
        "import sys\n"
        "from webhook import compiled\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "sys.meta_path.insert(0, compiled.SourcesOnly('pkg'))\n"
        "import pkg.mod, pkg.sub.deep\n"
        "print(pkg.mod.WHERE, pkg.sub.deep.WHERE, pkg.mod.__file__.endswith('.py'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mod.py", "sub/deep.py", "True"]
    # Without the finder the broken extension is what Python picks.
    plain = code.replace("sys.meta_path.insert(0, compiled.SourcesOnly('pkg'))\n", "")
    done = subprocess.run([sys.executable, "-c", plain], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "ImportError" in done.stderr


def test_a_compiled_checkout_runs_its_compiled_modules() -> None:
    """After ``make compile`` (which ``make test`` runs first) the request path is the compiled one;
    skipped where no compiler built it."""
    if not list((ROOT / "webhook").rglob(f"*{SUFFIX}")):
        pytest.skip("not compiled here (no C compiler, or run outside make)")
    if compiled.stale_source(ROOT / "webhook") is not None:
        pytest.skip("sources edited since the last build: the guard runs them")
    import webhook.engine
    import webhook.validators.pod_security.facts

    assert webhook.engine.__file__ is not None and webhook.engine.__file__.endswith(SUFFIX)
    assert "webhook.validators.pod_security.facts" in compiled.modules()


def test_a_compiled_module_s_source_is_the_py_file_beside_its_extension() -> None:
    assert compiled.source_file(f"/site/webhook/engine{SUFFIX}") == Path("/site/webhook/engine.py")
    assert compiled.source_file("/site/webhook/cli.py") == Path("/site/webhook/cli.py")



@pytest.mark.parametrize("cls", [review.Review, review.Outcome, model.ReviewContext, model.PodTarget])
def test_a_written_out_init_takes_and_sets_every_field(cls: type) -> None:
    """These per-review dataclasses write their ``__init__`` out so that mypyc compiles it; a field
    added to the class but not to that ``__init__`` fails here, not as an unset attribute later.
    Read from the source: a compiled ``__init__`` checks its arguments' types and has no signature."""
    tree = ast.parse(compiled.source_file(sys.modules[cls.__module__].__file__ or "").read_text())
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == cls.__name__).body
    init = next(node for node in body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    fields = [field.name for field in dataclasses.fields(cls)]
    assert [arg.arg for arg in init.args.args[1:]] == fields
    assigned = [target.attr for node in init.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Attribute)]
    assert assigned == fields
