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
        "        if name.split('.')[0] in blocked:\n"
        "            raise ImportError('blocked: ' + name, name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import recsvc\n"
        "for m in pkgutil.walk_packages(recsvc.__path__, 'recsvc.'):\n"
        "    if m.name != 'recsvc.__main__':  # runs the CLI\n"
        "        importlib.import_module(m.name)\n"
        "from recsvc.cli.app import app, load_command_groups\n"
        "print('missing', load_command_groups())\n"
        "import typer.main\n"
        "print('commands', sorted(typer.main.get_command(app).commands))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    # without the training libraries the CLI still starts and just lacks the offline commands;
    # the development ones (sandbox) import their libraries only when they run
    assert "missing ['training']" in result.stdout
    assert "'redis'" in result.stdout and "'synth'" in result.stdout
    assert "'train'" not in result.stdout and result.stderr == ""


def test_a_development_command_without_the_training_libraries_says_what_it_needs() -> None:
    blocker = (
        "import sys\n"
        f"blocked = {sorted(FORBIDDEN)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError(name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['recsvc', 'synth', '--out', sys.argv[1]]\n"
        "from recsvc.cli.app import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker, str(ROOT / "never-written")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "synth needs the 'train' extra" in result.stderr and "Traceback" not in result.stderr
    assert not (ROOT / "never-written").exists()
