"""The code each stage runs, by meaning: a hash of the normalised syntax tree of every project module its entry point
(``pipelines.<stage>``) imports, directly or not, imports inside functions included.

Normalised: docstrings, comments and help texts (``help=`` and ``description=`` arguments: command-line and params
help) are left out, so editing them changes no hash and reruns no stage; a changed default value, condition, call
or import does. DVC runs ``python -m pipelines.code`` as the pipeline's first stage (``code``), which writes one file
per stage into ``paths.code_dir``; each stage depends on its file there instead of on its modules. The Prefect stage
keys use the same hashes (``rlvr.lineage.stage_keys``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rlvr", "pipelines", "tasks", "flows")
HELP_ARGUMENTS = ("help", "description")  # keyword arguments that only document (argparse, pydantic's Field)


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``) under ``root``, or None outside the
    project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """The project modules ``path`` imports anywhere (inside functions too; ``if TYPE_CHECKING`` blocks, which
    never run, not), with the packages they sit in."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
        stack.extend(ast.iter_child_nodes(node))
    modules = set()
    for name in names:
        parts = name.split(".")
        modules |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i]), root)}
    return modules


def code_closure(module: str, root: Path = ROOT) -> list[str]:
    """The files of ``module`` and of every project module it imports, directly or not, relative to ``root``."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name, root) is None:
            continue
        seen.add(name)
        todo.extend(imported_modules(module_file(name, root), root))
    return sorted(str(module_file(name, root).relative_to(root)) for name in seen)


def stage_code(stage: str, root: Path = ROOT) -> list[str]:
    """The code files of ``stage``: the closure of its entry point ``pipelines.<stage>``."""
    return code_closure(f"pipelines.{stage}", root)


class _Normaliser(ast.NodeTransformer):
    """Drops docstrings and help texts (see module docstring)."""

    def _body(self, node: ast.AST) -> ast.AST:
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _body  # noqa: N815

    def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802 - the visitor's name
        node.keywords = [keyword for keyword in node.keywords if keyword.arg not in HELP_ARGUMENTS]
        return self.generic_visit(node)


@functools.cache
def _normalised(path: Path, mtime_ns: int, size: int) -> str:
    tree = _Normaliser().visit(ast.parse(path.read_text()))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def normalised(path: Path) -> str:
    """The syntax tree of ``path`` without its docstrings and help texts, as text (cached per version of the file)."""
    state = path.stat()
    return _normalised(path, state.st_mtime_ns, state.st_size)


def stage_hash(stage: str, root: Path = ROOT) -> str:
    """The hash of the code ``stage`` runs (the project under ``root``), by meaning (see module docstring)."""
    digest = hashlib.sha256()
    for relative in stage_code(stage, root):
        digest.update(f"{relative}\n{normalised(root / relative)}\n".encode())
    return digest.hexdigest()[:16]


def write_hashes(out_dir: str | Path, stages: list[str]) -> None:
    """``<out_dir>/<stage>.json`` per stage: its code's hash and the modules it covers (rewritten only where the
    hash changed, so a stage that depends on its file sees it unchanged otherwise)."""
    from rlvr.files import atomic_write_text

    out_dir = Path(out_dir)
    for stage in stages:
        text = json.dumps({"stage": stage, "hash": stage_hash(stage), "modules": stage_code(stage)}, indent=1) + "\n"
        path = out_dir / f"{stage}.json"
        if not path.is_file() or path.read_text() != text:
            atomic_write_text(path, text)
