"""The repository as a user receives it: declared dependencies, one direction of imports, no outside files.

- Every third-party module that ``games/``, ``solvers/``, ``scenarios/`` and ``marl/``
  import belongs to a distribution that ``pyproject.toml`` declares (in
  ``dependencies`` or an extra), so an undeclared import fails here and not on a user's
  machine.
- Imports run one way (ARCHITECTURE.md): ``games <- scenarios``, ``games <- solvers``,
  and ``games, scenarios, solvers <- marl``.
- Nothing in the repository names the ``../shared`` folder that sits beside a developer's
  checkout; the test data lives in ``tests/data`` (``tests/conftest.py`` also refuses any
  open under that folder while the tests run).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGES = ("games", "solvers", "scenarios", "marl")
LOWER = {"games": set(), "scenarios": {"games"}, "solvers": {"games"}, "marl": {"games", "scenarios", "solvers"}}


def _imports() -> list[tuple[str, str, int]]:
    """``(top-level module, file, line)`` of every absolute import in the four packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                relative = str(path.relative_to(REPO))
                found.extend((name.split(".")[0], relative, node.lineno) for name in names)
    return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {_normalized(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)) for requirement in requirements}


def test_every_third_party_import_is_a_declared_dependency():
    declared = _declared()
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, where, line in _imports():
        if module in sys.stdlib_module_names or module in PACKAGES:
            continue
        distributions = providers.get(module)
        if not distributions:
            problems.append(f"{where}:{line}: {module} is imported, and no installed distribution provides it")
        elif not any(_normalized(name) in declared for name in distributions):
            problems.append(f"{where}:{line}: {module} comes from {', '.join(distributions)}, "
                            "which pyproject.toml does not declare")
    assert not problems, "\n".join(problems)


def test_imports_run_one_way():
    wrong = [f"{where}:{line}: imports {module}" for module, where, line in _imports()
             if module in PACKAGES and module != where.split("/")[0] and module not in LOWER[where.split("/")[0]]]
    assert not wrong, "\n".join(wrong)


def test_nothing_in_the_repository_names_the_folder_beside_it():
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    assert files, "git lists no files"
    pattern = re.compile(r"\.\./shared|shared/data")
    offenders = []
    for name in files:
        path = REPO / name
        if path.suffix not in (".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", "") or not path.is_file():
            continue
        if name == "tests/test_repository.py":
            continue
        for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(text):
                offenders.append(f"{name}:{number}: {text.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_gambit_test_data_is_inside_the_repository():
    from tests.conftest import GAMBIT_DATA, gambit_files

    assert GAMBIT_DATA.is_relative_to(REPO)
    assert len(gambit_files(".efg")) == 86 and len(gambit_files(".nfg")) == 44  # the whole collection
    for name in ("e04.nfg", "2x2x2.nfg", "4cards.efg"):
        assert (REPO / "examples" / name).read_bytes() == (GAMBIT_DATA / name).read_bytes()
