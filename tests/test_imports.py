"""What importing ferroproc's modules needs, and what it says when something
is missing: each module is importable on its own, and the one that needs an
optional dependency names the extra that brings it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


# A finder in front of the others that answers for `missing` as Python does for
# a package that is not installed (the test suite itself has Twisted).
_HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == {missing!r} or name.startswith({missing!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


@pytest.mark.parametrize("missing", ["twisted", "zope"])
def test_ferroproc_twisted_without_twisted_says_how_to_install_it(missing: str) -> None:
    if missing != "twisted":
        # Hiding zope alone needs a Twisted to be there.
        pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
    done = _python(
        _HIDE.format(missing=missing) + "try:\n"
        "    import ferroproc.twisted\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, '|', e, '|', e.name)\n"
    )
    assert done.returncode == 0, done.stderr
    kind, message, name = (part.strip() for part in done.stdout.split("|"))
    assert kind == "ImportError"
    assert "pip install 'ferroproc[twisted]'" in message
    assert name == missing


def test_a_broken_twisted_is_not_reported_as_a_missing_one() -> None:
    pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
    # An ImportError from inside an installed Twisted is Twisted's, not ours to reword.
    done = _python(
        _HIDE.format(missing="twisted.internet.error") + "try:\n"
        "    import ferroproc.twisted\n"
        "except ImportError as e:\n"
        "    print('pip install' in str(e))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# The utilities' modules import each other one way only: each can come first.
_MODULES = ["ferroproc", "ferroproc.utils", "ferroproc.pipeline", "ferroproc.asyncio", "ferroproc._capture"]


@pytest.mark.parametrize("module", [*_MODULES, "ferroproc._utilerrors"])
def test_each_module_imports_on_its_own(module: str) -> None:
    done = _python(f"import {module}")
    assert done.returncode == 0, done.stderr


def _imports(path: Path) -> set[str]:
    """The ferroproc modules a module imports (at any depth of its code, but
    not under ``if TYPE_CHECKING:``, which runs only for type checkers)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ferroproc"):
            found.add(node.module)
            # `from ferroproc import utils` imports the module ferroproc.utils.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ferroproc"))
    return found


def test_the_package_imports_itself_one_way() -> None:
    """No circle of imports between ferroproc's modules (a circle makes the
    import order matter and hides which module depends on which)."""
    import ferroproc

    root = Path(ferroproc.__file__).parent
    modules = {
        "ferroproc." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
    }
    modules = {name.removesuffix("."): path for name, path in modules.items()}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    # The package itself re-exports its modules' names: edges into it are not dependencies.
    graph = {name: deps - {"ferroproc"} for name, deps in graph.items()}

    def circle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return trail + [start]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, trail + [dep]))
        return None

    circles = [c for c in map(circle_from, sorted(graph)) if c]
    assert not circles, " ; ".join(" -> ".join(c) for c in circles)
