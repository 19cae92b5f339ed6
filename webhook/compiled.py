"""Which build of the package runs: the mypyc-compiled request path, or the Python sources.

``make compile`` (run by ``make run``, ``make test`` and ``make bench``) compiles the modules
``setup.py`` lists into extensions beside their sources, and Python imports an extension before a
source of the same name. In a checkout that would be a trap: edit a check, run ``pytest`` or
``python -m webhook`` directly, and the old compiled code answers. So when any source in a
checkout is newer than the last build, the package imports its sources only (all of
them: a compiled module calls the compiled code of the modules compiled with it directly, so mixing
would still run old code) and says so once on stderr. An installed package (a wheel, the image) is
never checked: pip writes its files in no set order.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


STAMP = ".compiled"
"""Touched by ``make compile`` after each build: a build that finds its extensions up to date keeps
their old times, so the stamp, not the extensions, says when the build last ran."""


def stale_source(package_dir: Path) -> Path | None:
    """A source newer than the last build under ``package_dir`` (its stamp, else its oldest
    extension), if any; ``None`` when nothing is compiled."""
    built: float | None = None
    newest: tuple[float, Path] | None = None
    for path in package_dir.rglob("*"):
        name = path.name
        if name.endswith(".py"):
            mtime = path.stat().st_mtime
            if newest is None or mtime > newest[0]:
                newest = (mtime, path)
        elif name.endswith(EXTENSION_SUFFIXES):
            mtime = path.stat().st_mtime
            built = mtime if built is None else min(built, mtime)
    if built is None or newest is None:
        return None
    stamp = package_dir / STAMP
    if stamp.is_file():
        built = stamp.stat().st_mtime
    if newest[0] <= built:
        return None
    return newest[1]


class SourcesOnly(importlib.abc.MetaPathFinder):
    """Finds the modules of one package from their ``.py`` files, never from extensions."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.package + ".") or not path:
            return None
        for entry in path:
            finder = importlib.machinery.FileFinder(
                entry, (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
            )
            spec = finder.find_spec(fullname)
            if spec is not None:
                return spec
        return None


def guard() -> None:
    """In a checkout (``setup.py`` beside the package), run the sources when a compiled build is
    older than them."""
    if not (PACKAGE_DIR.parent / "setup.py").is_file():
        return
    newer = stale_source(PACKAGE_DIR)
    if newer is None:
        return
    sys.meta_path.insert(0, SourcesOnly(PACKAGE_DIR.name))
    sys.stderr.write(
        f"webhook: {newer.relative_to(PACKAGE_DIR.parent)} is newer than the compiled modules: running the "
        "Python sources (`make compile` rebuilds them)\n"
    )


def source_file(filename: str) -> Path:
    """The ``.py`` file a module was loaded from or, for a compiled module (whose ``__file__`` is
    its extension), the source it was compiled from, which lies beside it in a checkout and in a
    wheel alike."""
    for suffix in EXTENSION_SUFFIXES:
        if filename.endswith(suffix):
            return Path(filename[: -len(suffix)] + ".py")
    return Path(filename)


def modules() -> list[str]:
    """The package's imported modules that run compiled (for the start-up log line)."""
    return sorted(
        name for name, module in list(sys.modules.items())
        if name.startswith(PACKAGE_DIR.name + ".") and str(getattr(module, "__file__", "")).endswith(EXTENSION_SUFFIXES)
    )
