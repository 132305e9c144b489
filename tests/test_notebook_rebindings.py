"""Every cell re-runnable after Run All: no name bound to a function, class, module or object of a notebook class
is rebound to something of another kind in a later cell.

Re-running the cell that calls ``features(images)`` after a later cell did ``features = tf.random.normal(...)``
raises TypeError: the notebook then works top to bottom once and never again. This finds such names by reading the
code cells with ``ast`` (module level only: a function's locals are its own).
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CALLABLES = {"a function", "a class", "an import"}
LITERALS = {ast.List: "a list", ast.ListComp: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict",
            ast.DictComp: "a dict", ast.Set: "a set", ast.SetComp: "a set", ast.JoinedStr: "a string"}


def _parse(source: str) -> ast.Module:
    # IPython's `%magic` and `!shell` lines are not Python: `pass` at their indentation keeps any block valid.
    lines = [re.sub(r"^(\s*)[%!].*", r"\1pass", line) for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def _targets(node) -> list[str]:
    """The names an assignment target binds (tuples and starred names unpacked; attributes and items bind none)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [name for element in node.elts for name in _targets(element)]
    return []


def _kind(value, classes: set[str]) -> str | None:
    """What an assigned expression is, where the code says so: a lambda, a literal, an object of a notebook class."""
    if isinstance(value, ast.Lambda):
        return "a function"
    if isinstance(value, ast.Constant):
        return "a string" if isinstance(value.value, str) else "a number"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in classes:
        return f"an object of {value.func.id}"
    return LITERALS.get(type(value))


def bindings(tree: ast.Module, classes: set[str]) -> list[tuple[str, str | None]]:
    """``(name, kind)`` for every module-level binding in source order (kind None: some value the code does not
    name). ``classes`` gathers the notebook's class names as they are defined."""
    found = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if isinstance(node, ast.ClassDef):
                    classes.add(node.name)
                found.append((node.name, "a class" if isinstance(node, ast.ClassDef) else "a function"))
                continue  # its body binds locals
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.extend(((alias.asname or alias.name).split(".")[0], "an import") for alias in node.names)
                continue
            if isinstance(node, ast.Assign):
                kind = _kind(node.value, classes) if len(node.targets) == 1 and isinstance(
                    node.targets[0], ast.Name) else None
                found.extend((name, kind) for target in node.targets for name in _targets(target))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
                found.extend((name, None) for name in _targets(node.target))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                found.extend((name, None) for item in node.items for name in _targets(item.optional_vars))
            elif isinstance(node, ast.Try):
                found.extend((h.name, None) for h in node.handlers if h.name)
            if not hasattr(node, "body"):  # a simple statement: `(x := ...)` inside it binds x
                found.extend((n.target.id, None) for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            # compound statements at module level bind module names too
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    visit(tree.body)
    return found


def rebindings(cells: list[tuple[int, str]]) -> list[str]:
    """Each name bound to a function, class, module or object of a notebook class in one code cell and to
    something of another kind in a later one."""
    known: dict[str, tuple[str, int]] = {}   # name -> (its kind, the cell that bound it)
    classes: set[str] = set()
    problems = []
    for number, source in cells:
        for name, kind in bindings(_parse(source), classes):
            before, cell = known.get(name, (None, number))
            if cell < number and before is not None and (
                    before in CALLABLES and kind not in CALLABLES
                    or before.startswith("an object") and kind is not None and kind != before):
                problems.append(f"cell {number} rebinds {name!r} (cell {cell}'s {before}) to {kind or 'a value'}")
            if kind is not None or before in CALLABLES:
                known[name] = (kind or "a value", number)
    return problems


def code_cells(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_name_is_rebound_to_another_kind_in_a_later_cell(path):
    problems = rebindings(code_cells(path))
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_check_finds_the_rebindings_it_is_for():
    cells = [(1, "from t2ilib import metrics\ndef features(x):\n    return x\ntoy = lambda: 1\n"),
             (2, "%matplotlib inline\nfeatures = features(3)\n"),
             (3, "for toy in range(2):\n    pass\nif True:\n    (metrics, other) = (1, 2)\n")]
    problems = rebindings(cells)
    assert [p.split(" (")[0] for p in problems] == [
        "cell 2 rebinds 'features'", "cell 3 rebinds 'toy'", "cell 3 rebinds 'metrics'"]
    # an object of a notebook class, rebound to a list (notebook 03's `toy` before issue 27)
    assert rebindings([(9, "class ToyGAN:\n    pass\ntoy = ToyGAN()\n"), (14, "toy = ['a red flower']\n")]) == [
        "cell 14 rebinds 'toy' (cell 9's an object of ToyGAN) to a list"]
    # a function redefined, a value re-assigned in its own cell, and a function's locals are all fine
    assert rebindings([(1, "def f():\n    g = 1\n    return g\ng = 2\n"), (2, "def f():\n    pass\ng = 3\n")]) == []
