"""Build the API reference with pdoc, and fail on anything a reader would miss.

    python scripts/docs.py [-o DIR]       (default DIR: docs/api, git-ignored)

One HTML page per public module (``MODULES``) plus an index and a search box;
``ferroproc._core`` is shown with only the classes user code receives (the
``spawnProcess`` transport, ``callLater``'s DelayedCall), its types and
docstrings taken from ``_core.pyi``.

Exits 1, after saying why, if

- pdoc warns about anything (an unimportable module, a stub it cannot read,
  an annotation it cannot evaluate ...);
- a module, a name in a module's ``__all__``, or a public method of a
  documented class has no docstring;
- a docstring refers (with a Sphinx role such as ``:class:`...```) to a name
  that has no page here.

The docstrings follow Sphinx's conventions (``:class:`Failure``` roles,
``Example::`` before a literal block, ``#:`` comments on attributes) with
Google-style sections (``Arguments:``, ``Raises:``). pdoc reads the sections
itself; ``adapt_pdoc`` teaches it the rest, and to read ``_core.pyi``, which
it would otherwise fail to execute (``import_stub``).

To document a new module, add its name to ``MODULES``.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import builtins
import importlib.machinery
import importlib.util
import re
import shutil
import sys
import types
import warnings
from pathlib import Path

#: The public modules, in the order of the navigation.
MODULES = [
    "ferroproc",
    "ferroproc.protocol",
    "ferroproc.interfaces",
    "ferroproc.error",
    "ferroproc.failure",
    "ferroproc.defer",
    "ferroproc.utils",
    "ferroproc.pipeline",
    "ferroproc.jobs",
    "ferroproc.jobs.dask",
    "ferroproc.task",
    "ferroproc.log",
    "ferroproc.procutils",
    "ferroproc.asyncio",
    "ferroproc.twisted",
    "ferroproc._core",
]

#: Modules whose ``__all__`` holds more than users see, and the names to show.
#: The engine class stays private: only ferroproc's reactors construct it.
SHOWN = {"ferroproc._core": ["Process", "DelayedCall"]}

#: Private names that docstrings may mention without a page (shown as code,
#: unlinked), each with the reason.
UNLINKED = {
    # The engine behind every reactor, built only by ferroproc; ferroproc.twisted
    # and the _core page name it to explain how they work.
    "ferroproc._core.Engine": "internal",
    # The jobs runner's core, built only by ferroproc.jobs.
    "ferroproc._core.JobQueue": "internal",
}

ROOT = Path(__file__).resolve().parent.parent

# ``:class:`~ferroproc.failure.Failure```, ``:meth:`cancel``` ...
SPHINX_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|exc|obj):`(~?)([^`<>]+?)`")


def sphinx_to_markdown(text: str) -> str:
    """Sphinx cross-reference roles as Markdown code, which pdoc links to
    the named object (``:meth:`cancel``` becomes ```cancel()```), and a
    paragraph's closing ``::`` (a literal block follows) as Sphinx shows it:
    ``Example::`` as ``Example:``."""
    text = LITERAL_MARKER.sub(lambda m: m.group(1) + (":" if m.group(1) and not m.group(2) else ""), text)

    def repl(m: re.Match[str]) -> str:
        role, _, target = m.groups()
        target = target.strip()
        if role in ("func", "meth") and not target.endswith("()"):
            target += "()"
        return f"`{target}`"

    return SPHINX_ROLE.sub(repl, text)


LITERAL_MARKER = re.compile(r"(\S?)([ \t]*)::[ \t]*$", re.MULTILINE)


def role_targets(text: str) -> list[tuple[str, str]]:
    """``(role, target)`` for each Sphinx role in ``text``."""
    return [(m.group(1), m.group(3).strip().removesuffix("()")) for m in SPHINX_ROLE.finditer(text)]


def comment_docstrings(obj: types.ModuleType | type) -> dict[str, str]:
    """Sphinx's ``#:`` comments: ``{name: text}`` for each assignment in
    ``obj``'s own body that has a block of ``#:`` lines right above it.

    In a module, a name imported with ``from X import name`` (the package
    re-exporting ``reactor`` and ``__version__``) takes its comment from X,
    or from X's ``.pyi`` stub when X is compiled.
    """
    import pdoc.doc_ast as doc_ast

    source = doc_ast.get_source(obj)
    found = _comments_in(source, doc_ast.parse(obj).body)
    if isinstance(obj, types.ModuleType):
        for node in doc_ast.parse(obj).body:
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            origin = _module_comments(node.module)
            for alias in node.names:
                if alias.name in origin:
                    found.setdefault(alias.asname or alias.name, origin[alias.name])
    return found


def _module_comments(name: str) -> dict[str, str]:
    import pdoc.doc_ast as doc_ast
    import pdoc.doc_pyi as doc_pyi

    module = sys.modules.get(name)
    source = doc_ast.get_source(module) if module is not None else ""
    if not source:
        stub = doc_pyi.find_stub_file(name)
        source = stub.read_text() if stub else ""
    return _comments_in(source, ast.parse(source).body) if "#:" in source else {}


def _comments_in(source: str, body: list[ast.stmt]) -> dict[str, str]:
    if "#:" not in source:
        return {}
    lines = source.splitlines()
    found = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        block = []
        i = node.lineno - 2  # the line above, 0-based
        while i >= 0 and lines[i].strip().startswith("#:"):
            block.append(lines[i].strip()[2:].removeprefix(" "))
            i -= 1
        if block:
            found[name] = "\n".join(reversed(block)).strip()
    return found


def import_stub(module_name: str, stub_file: Path) -> types.ModuleType:
    """pdoc executes a ``.pyi`` to read it; stubs are written for type
    checkers, which never evaluate annotations (``_core.pyi`` uses classes
    before defining them), so execute it with postponed annotations."""
    loader = importlib.machinery.SourceFileLoader(module_name, str(stub_file))
    spec = importlib.util.spec_from_file_location(module_name, stub_file, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    code = compile(stub_file.read_text(), str(stub_file), "exec", flags=__future__.annotations.compiler_flag)
    exec(code, module.__dict__)
    return module


def adapt_pdoc() -> None:
    """Install the adapters described in the module docstring."""
    import pdoc.doc_ast as doc_ast
    import pdoc.doc_pyi as doc_pyi
    import pdoc.docstrings as docstrings

    convert = docstrings.convert

    def convert_with_roles(docstring: str, docformat: str, source_file: Path | None) -> str:
        return convert(sphinx_to_markdown(docstring), docformat, source_file)

    docstrings.convert = convert_with_roles

    walk_tree = doc_ast.walk_tree

    def walk_tree_with_comments(obj: types.ModuleType | type) -> doc_ast.AstInfo:
        info = walk_tree(obj)
        extra = comment_docstrings(obj)
        if not extra:
            return info
        return doc_ast.AstInfo({**extra, **info.var_docstrings}, info.func_docstrings, info.annotations)

    doc_ast.walk_tree = walk_tree_with_comments
    doc_pyi._import_stub_file = import_stub


def documented_names(module: object) -> list[str]:
    from pdoc import doc

    assert isinstance(module, doc.Module)
    names = SHOWN.get(module.modulename) or getattr(module.obj, "__all__", None)
    return list(names) if names is not None else [n for n in module.members if not n.startswith("_")]


def check(modules: dict[str, object]) -> list[str]:
    """What a reader would miss: undocumented public names, dangling references."""
    from pdoc import doc

    problems: list[str] = []
    known: set[str] = set(modules)
    items: list[doc.Doc] = []
    for name, module in modules.items():
        assert isinstance(module, doc.Module)
        if not module.docstring.strip():
            problems.append(f"{name}: the module has no docstring")
        items.append(module)
        for member_name in documented_names(module):
            member = module.members.get(member_name)
            if member is None:
                problems.append(f"{name}.{member_name}: listed in __all__ but not found")
                continue
            known.add(member.fullname)
            items.append(member)
            if not member.docstring.strip():
                problems.append(f"{member.fullname}: no docstring")
            if isinstance(member, doc.Class):
                for sub in member.own_members:
                    known.add(sub.fullname)
                    if sub.name.startswith("_"):
                        continue
                    items.append(sub)
                    if isinstance(sub, doc.Function) and not sub.docstring.strip():
                        problems.append(f"{sub.fullname}: public method without a docstring")
    # Members inherited from other documented classes resolve too.
    for item in items:
        if isinstance(item, doc.Class):
            known.update(f"{item.fullname}.{n}" for n in item.members)
    for item in items:
        for role, target in role_targets(item.docstring):
            if not resolves(target, item, known):
                problems.append(f"{item.fullname}: :{role}:`{target}` has no page in the reference")
    return problems


def resolves(target: str, item: object, known: set[str]) -> bool:
    """Whether a role's target names a documented object, looked up as Sphinx
    would: fully qualified, or relative to the item's class and module. A
    target in the standard library (``:class:`asyncio.Future```) needs no
    page here."""
    from pdoc import doc

    assert isinstance(item, doc.Doc)
    target = target.lstrip("~.")
    parts = item.fullname.split(".")
    scopes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
    candidates = [target] + [f"{scope}.{target}" for scope in scopes]
    if any(c in known or c in UNLINKED for c in candidates):
        return True
    head = target.split(".")[0]
    return head != "ferroproc" and (head in sys.stdlib_module_names or hasattr(builtins, head))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "api")
    out: Path = parser.parse_args().output

    for needed in ("pdoc", "twisted"):
        if importlib.util.find_spec(needed) is None:
            # ferroproc.twisted's page imports Twisted, as any reader's would.
            print(f"scripts/docs.py: {needed} is not installed: pip install -e '.[test,twisted]'", file=sys.stderr)
            return 1
    sys.dont_write_bytecode = True  # the stub is executed; leave no .pyc of it
    import pdoc
    import pdoc.render
    from pdoc import doc

    import ferroproc

    adapt_pdoc()
    pdoc.render.configure(
        docformat="google",
        footer_text=f"ferroproc {ferroproc.__version__} API reference",
        template_directory=ROOT / "docs" / "pdoc",
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        modules: dict[str, doc.Module] = {}
        for name in MODULES:
            module = doc.Module.from_name(name)
            if name in SHOWN:
                members = module.members  # computes them, stub types included
                for hidden in [n for n in members if n not in SHOWN[name]]:
                    del members[hidden]
            modules[name] = module
        # The package's __all__ lists no modules, so pdoc's navigation would
        # list none: show the documented ones.
        root = modules[MODULES[0]]
        root.submodules = [m for n, m in modules.items() if n.startswith(f"{root.modulename}.")]  # type: ignore[misc]
        if out.exists():
            shutil.rmtree(out)
        for module in modules.values():
            html = pdoc.render.html_module(module, modules)
            path = out / f"{module.fullname.replace('.', '/')}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html)
        (out / "index.html").write_text(pdoc.render.html_index(modules))
        (out / "search.js").write_text(pdoc.render.search_index(modules))

    problems = [f"pdoc: {w.category.__name__}: {w.message}" for w in caught]
    problems += check(modules)
    if problems:
        print(f"API reference: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"API reference: {len(modules)} modules, no warnings: {shown}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
