"""The online service never imports the offline pipeline or its libraries."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"training", "implicit", "scipy", "pyarrow", "threadpoolctl", "tqdm"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_recsvc_module_imports_training_or_its_libraries() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN)
        for path in sorted((ROOT / "recsvc").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_recsvc_module_imports_with_training_libraries_unavailable() -> None:
    blocker = (
        "import sys, importlib, pkgutil\n"
        f"blocked = {sorted(FORBIDDEN)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import recsvc\n"
        "for m in pkgutil.walk_packages(recsvc.__path__, 'recsvc.'):\n"
        "    if m.name != 'recsvc.__main__':  # runs the CLI\n"
        "        importlib.import_module(m.name)\n"
        "from recsvc.cli.main import load_command_groups\n"
        "print('missing', load_command_groups())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    # without the training libraries the CLI still starts and just lacks the offline commands
    assert "missing ['training']" in result.stdout
