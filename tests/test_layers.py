"""The packages import one another only the way the architecture says (docs/architecture.md).

Each package's `__init__` docstring says what it may import; this is the same table, enforced.
Every import counts, at module level or inside a function, so a lazy import is no way around
it. A package may always import itself and anything outside recsvc, training and sandbox.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("recsvc", "training", "sandbox")

# package -> the packages it may import (besides itself). The longest matching prefix rules.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "recsvc": ("recsvc.cli",),  # recsvc/__main__.py runs the CLI
    "training": (),
    "recsvc.contract": (),
    "recsvc.feed": ("recsvc.contract",),
    "recsvc.store": ("recsvc.contract",),
    # publishing verifies a model with the service's own ranker before it goes live
    "recsvc.registry": ("recsvc.store", "recsvc.feed", "recsvc.contract"),
    "recsvc.service": ("recsvc.feed", "recsvc.store", "recsvc.contract"),
    "recsvc.admin": ("recsvc.store", "recsvc.contract"),
    "recsvc.edge": (
        "recsvc.service",
        "recsvc.feed",
        "recsvc.store",
        "recsvc.admin",
        "recsvc.contract",
    ),
    # the composition root of the online half
    "recsvc.cli": (
        "recsvc.edge",
        "recsvc.service",
        "recsvc.registry",
        "recsvc.admin",
        "recsvc.feed",
        "recsvc.store",
        "recsvc.contract",
    ),
    "sandbox": ("recsvc.contract",),
    # the drains hold a shard's lock (recsvc.registry.locks) while they drain it
    "training.data": ("recsvc.contract", "recsvc.store", "recsvc.registry"),
    # the trainer chooses a new video's prior weight with the service's own closed form
    "training.models": ("training.data", "training.evaluation", "recsvc.feed", "recsvc.contract"),
    "training.evaluation": ("training.data", "training.models", "recsvc.feed", "recsvc.contract"),
    "training.ab": ("training.data", "recsvc.contract"),
    "training.nightly": (
        "training.data",
        "training.models",
        "training.evaluation",
        "recsvc.registry",
        "recsvc.store",
        "recsvc.contract",
    ),
    # the composition root of the offline half; sandbox only for the --world option
    "training.cli": (
        "training",
        "recsvc.registry",
        "recsvc.store",
        "recsvc.contract",
        "recsvc.service.settings",
        "sandbox",
    ),
}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _owner(module: str) -> str:
    """The package of the table that a module belongs to (the longest matching prefix)."""
    matches = [p for p in MAY_IMPORT if module == p or module.startswith(p + ".")]
    assert matches, f"{module} belongs to no package of the layering table"
    return max(matches, key=len)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from recsvc.store import state` imports recsvc.store.state
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _existing_module(root: Path, name: str) -> str:
    """The longest prefix of a dotted name that is a module or package (not an attribute)."""
    parts = name.split(".")
    while len(parts) > 1:
        path = root.joinpath(*parts)
        if path.is_dir() or path.with_suffix(".py").is_file():
            break
        parts.pop()
    return ".".join(parts)


def _allowed(owner: str, target: str) -> bool:
    for allowed in (owner, *MAY_IMPORT[owner]):
        if target == allowed or target.startswith(allowed + "."):
            return True
    return False


def wrong_way_imports(root: Path) -> list[str]:
    """Every import of one of our packages that the table does not allow, as `file:line`."""
    problems = []
    for top in OURS:
        for path in sorted((root / top).rglob("*.py")):
            module = _module_name(root, path)
            owner = _owner(module)
            for line, name in _imports(path, module):
                if name.split(".")[0] not in OURS:
                    continue
                target = _existing_module(root, name)
                if target in OURS:
                    continue  # the top package's own attributes (`from recsvc import __version__`)
                if not _allowed(owner, target):
                    relative = path.relative_to(root)
                    problems.append(f"{relative}:{line}: {owner} imports {target}")
    return problems


def test_every_package_imports_only_what_the_architecture_allows() -> None:
    assert wrong_way_imports(ROOT) == []


def test_every_package_is_in_the_table_and_says_what_it_owns() -> None:
    for top in OURS:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            package = _module_name(ROOT, init)
            if package in ("recsvc.edge.routes", "recsvc.edge.console", "sandbox.world"):
                continue  # a part of its parent package, not a layer of its own
            assert package in MAY_IMPORT, f"{package} is missing from the layering table"
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and len(doc) > 80, f"{init.relative_to(ROOT)} says nothing of what it owns"


def test_a_planted_wrong_way_import_is_named(tmp_path: Path) -> None:
    for top in OURS:
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    feed = tmp_path / "recsvc" / "feed" / "compute.py"
    feed.write_text(
        feed.read_text() + "\n\ndef _planted() -> None:\n    from recsvc.edge import app\n"
    )
    store = tmp_path / "training" / "ab" / "stats.py"
    store.write_text(store.read_text() + "\nimport sandbox.world.generate\n")

    problems = wrong_way_imports(tmp_path)

    assert len(problems) == 2, problems
    assert problems[0].startswith("recsvc/feed/compute.py:")
    assert problems[0].endswith("recsvc.feed imports recsvc.edge.app")
    assert problems[1].startswith("training/ab/stats.py:")
    assert problems[1].endswith("training.ab imports sandbox.world.generate")
