"""The layered package stays as the README's Architecture section describes it."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pricing_core"
MODULES = sorted(PACKAGE.rglob("*.py"))
PAGES = sorted(p for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))


def test_outside_the_subpackages_the_package_holds_only_init_config_and_safety():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= {"__init__.py", "config.py", "safety.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_has_more_than_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_no_page_has_more_than_150_lines(path):
    assert len(path.read_text().splitlines()) <= 150


def _inner_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and node.col_offset > 0
        and "optional" not in lines[node.lineno - 1]
        and not _under_type_checking(tree, node)
    ]


def _under_type_checking(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
            and any(child is target for child in ast.walk(node))
        ):
            return True
    return False


def test_no_import_hides_inside_a_function_except_a_commented_optional_dependency():
    found = {str(p.relative_to(ROOT)): _inner_imports(p) for p in MODULES}
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize(
    "pattern",
    [r"^class BudgetStatus\b", r"^def crossed_thresholds\(", r"^def budget_status\(",
     r"^def (usd|format_money)\("],
)  # fmt: skip
def test_each_of_these_is_defined_exactly_once(pattern):
    sources = [*MODULES, *(ROOT / "pages").glob("*.py")]
    hits = [p for p in sources for line in p.read_text().splitlines() if re.match(pattern, line)]
    assert len(hits) == 1, hits


@pytest.mark.skipif(not shutil.which("lint-imports", path=str(Path(sys.executable).parent)),
                    reason="import-linter is not installed (pip install -e '.[test]')")  # fmt: skip
def test_the_layer_contract_holds():
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout
