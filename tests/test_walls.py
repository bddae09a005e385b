"""The three walls: the library never imports pytest or the pytest layer; suites never import the sandbox;
only the CLI and the tests depend on clusterproof.sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from clusterproof import sandbox`
    return names


def offenders(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    out = []
    for f in files:
        for name in sorted(imports_of(f)):
            if any(name == b or name.startswith(b + ".") for b in banned):
                where = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
                out.append(f"{where} imports {name}")
    return out


def test_library_never_imports_pytest_or_the_pytest_layer() -> None:
    files = sorted((ROOT / "clusterproof").rglob("*.py"))
    assert files
    assert offenders(files, ("pytest", "_pytest", "fixtures", "suites", "conftest")) == []


def test_suites_and_fixtures_never_import_the_sandbox() -> None:
    files = sorted((ROOT / "suites").rglob("*.py")) + sorted((ROOT / "fixtures").rglob("*.py")) + [ROOT / "conftest.py"]
    assert offenders(files, ("clusterproof.sandbox",)) == []


def test_only_cli_benches_and_sandbox_itself_depend_on_the_sandbox() -> None:
    # bench/ scripts may start their own sandbox (like the CLI); nothing else in the library may.
    cli = ("cli.py", "cli_sandbox.py")  # the CLI: cli.py and its sandbox commands
    lib = [f for f in sorted((ROOT / "clusterproof").rglob("*.py"))
           if "sandbox" not in f.relative_to(ROOT / "clusterproof").parts and f.relative_to(ROOT / "clusterproof").as_posix() not in cli]
    assert offenders(lib, ("clusterproof.sandbox",)) == []


def test_walls_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pytest\nfrom clusterproof.sandbox import cluster\nfrom clusterproof import sandbox\n")
    assert imports_of(bad) >= {"pytest", "clusterproof.sandbox", "clusterproof.sandbox.cluster"}
    assert offenders([bad], ("clusterproof.sandbox",))  # both forms are caught
