"""Every piece of t2ilib says which notebook introduces it, and the notebooks agree (d2l's rule: the library is the
code the notebooks teach, each piece traceable to where it is taught). The rules, read from the source (ast) and
the notebooks' code cells:

1. Every module's docstring says "Introduced in notebook NN", and NN is the first notebook whose code imports it.
2. A public top-level function or class that a notebook's code names (``module.name``, ``from t2ilib.module
   import name``) is a taught name: its docstring says "Introduced in notebook NN", NN the first notebook naming it.
3. "Introduced in notebook NN" on a name no notebook names is wrong: a piece only the library uses is not taught.
   Such a piece says instead which taught piece it builds, "Used by NAME (notebook NN)", and NAME must be a taught
   name of t2ilib introduced in notebook NN (or the module itself, "Used by t2ilib.MODULE (notebook NN)").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "t2ilib"
INTRODUCED = re.compile(r"Introduced\s+in\s+notebook\s+(\d\d)")
USED_BY = re.compile(r"Used\s+by\s+([\w.]+)\s+\(notebook\s+(\d\d)\)")


def _modules() -> dict[str, ast.Module]:
    """t2ilib's modules by name (``"t2ilib"`` for the package itself)."""
    trees = {}
    for path in sorted(LIBRARY.glob("*.py")):
        name = "t2ilib" if path.stem == "__init__" else path.stem
        trees[name] = ast.parse(path.read_text(), filename=str(path))
    return trees


def _definitions(tree: ast.Module):
    """(name, docstring) of the module's public top-level functions and classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node.name, ast.get_docstring(node) or ""


def _code(cell_source: str) -> ast.Module | None:
    # IPython's !shell and %magic lines become `pass` at their indentation, so the cell parses as Python
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
             for line in cell_source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _names_used(tree: ast.Module, modules, aliases: dict) -> tuple[set[str], set[tuple[str, str]]]:
    """The t2ilib modules a cell imports and the (module, name) pairs it names; ``aliases`` (what a name stands for,
    e.g. ``{"metrics": "t2ilib.metrics"}``) carries the notebook's imports from cell to cell."""
    used_modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "t2ilib":
                    used_modules.add(parts[1] if len(parts) > 1 else "t2ilib")
                    aliases[alias.asname or "t2ilib"] = "t2ilib" if alias.asname is None else alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "t2ilib":
            source = "t2ilib" if node.module == "t2ilib" else node.module.split(".")[1]
            for alias in node.names:
                if source == "t2ilib" and alias.name in modules:  # from t2ilib import metrics
                    used_modules.add(alias.name)
                    aliases[alias.asname or alias.name] = f"t2ilib.{alias.name}"
                else:  # from t2ilib.metrics import match_rates, or from t2ilib import setup
                    used_modules.add(source)
                    names.add((source, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                path = aliases[inner.id].split(".") + chain[::-1]  # t2ilib[.module].name...
                if len(path) >= 3 and path[1] in modules:
                    used_modules.add(path[1])
                    names.add((path[1], path[2]))
                elif len(path) >= 2:
                    if path[1] in modules:
                        used_modules.add(path[1])
                    else:
                        names.add(("t2ilib", path[1]))
    return used_modules, names


def _first_uses(modules):
    """For each t2ilib module and each (module, name): the notebooks whose code uses it, in order."""
    module_uses, name_uses = {}, {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number, aliases = path.name[:2], {}
        for cell in nbformat.read(path, as_version=4).cells:
            tree = _code(cell.source) if cell.cell_type == "code" else None
            if tree is None:
                continue
            used_modules, names = _names_used(tree, modules, aliases)
            for module in used_modules:
                module_uses.setdefault(module, []).append(number)
            for pair in names:
                name_uses.setdefault(pair, []).append(number)
    return module_uses, name_uses


def tag_problems() -> list[str]:
    modules = _modules()
    module_uses, name_uses = _first_uses(modules)
    introduced = {(module, name): INTRODUCED.search(doc) for module, tree in modules.items()
                  for name, doc in _definitions(tree)}
    taught = {name: match.group(1) for (_, name), match in introduced.items() if match}
    problems = []
    for module, tree in modules.items():
        tag = INTRODUCED.search(ast.get_docstring(tree) or "")
        first = min(module_uses.get(module, []), default=None)
        if tag is None:
            problems.append(f"{module}: the module's docstring does not say 'Introduced in notebook NN' "
                            f"(first imported in notebook {first})")
        elif tag.group(1) != first:
            problems.append(f"{module}: tagged 'Introduced in notebook {tag.group(1)}' but first imported in "
                            f"notebook {first}")
        for name, doc in _definitions(tree):
            tag, uses = introduced[(module, name)], sorted(name_uses.get((module, name), []))
            where = f"{module}.{name}"
            if uses and tag is None:
                problems.append(f"{where}: named in notebook {uses[0]}'s code but its docstring does not say "
                                f"'Introduced in notebook {uses[0]}'")
            elif uses and tag.group(1) != uses[0]:
                problems.append(f"{where}: tagged 'Introduced in notebook {tag.group(1)}' but first used in notebook "
                                f"{uses[0]} (used in {', '.join(sorted(set(uses)))})")
            elif tag is not None and not uses:
                problems.append(f"{where}: tagged 'Introduced in notebook {tag.group(1)}' but no notebook's code "
                                "names it: say which taught piece it builds ('Used by NAME (notebook NN)') instead")
            for builder, number in USED_BY.findall(doc):
                target = builder.removeprefix("t2ilib.")
                expected = (INTRODUCED.search(ast.get_docstring(modules[target]) or "").group(1)
                            if target in modules else taught.get(builder.split(".")[-1]))
                if expected != number:
                    problems.append(f"{where}: says 'Used by {builder} (notebook {number})' but {builder} is "
                                    f"{'introduced in notebook ' + expected if expected else 'not a taught name'}")
    return problems


def test_every_tag_names_the_notebook_that_first_uses_it():
    problems = tag_problems()
    assert not problems, f"{len(problems)} notebook tag(s) disagree with the notebooks:\n" + "\n".join(problems)


@pytest.mark.parametrize("number", ["03", "05"])
def test_the_notebooks_are_read(number):
    """The parser sees what a notebook uses (a test that finds nothing would pass every tag)."""
    _, name_uses = _first_uses(_modules())
    assert any(number in uses for uses in name_uses.values())
