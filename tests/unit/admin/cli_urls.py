"""Every (method, path) the CLI sends to the management API, read from its source.

The CLI sends through `Client.get/post/upload/request`; the path it passes is
a literal, an f-string, a name bound in the module or the function, a call of
a small helper of the module (`_path(name)`), a conditional or a sum of
those.  Each is followed to the strings it can be; what the user types (a
name, an id) becomes `{*}`.  A path this cannot follow is reported as
unresolved, so a new way of building URLs fails the test instead of being
skipped.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bulkhead.cli

ANY = "{*}"
SURFACES = ("/admin/v1", "/tenant/v1")
_SENDS = {"get": "GET", "post": "POST", "upload": "POST"}


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    where: str


class _Module:
    def __init__(self, path: Path):
        self.name = path.name
        self.tree = ast.parse(path.read_text())
        self.consts: dict[str, ast.expr] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self.consts[target.id] = node.value
            elif isinstance(node, ast.FunctionDef):
                self.functions[node.name] = node

    def values(self, expr: ast.expr, scope: ast.FunctionDef | None, depth: int = 0) -> list[str]:
        """The strings `expr` can be; `{*}` for what only the user knows."""
        if depth > 8:
            return [ANY]
        if isinstance(expr, ast.Constant):
            return [expr.value] if isinstance(expr.value, str) else [ANY]
        if isinstance(expr, ast.JoinedStr):
            parts = [
                self.values(v.value, scope, depth + 1)
                if isinstance(v, ast.FormattedValue)
                else self.values(v, scope, depth + 1)
                for v in expr.values
            ]
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left = self.values(expr.left, scope, depth + 1)
            right = self.values(expr.right, scope, depth + 1)
            return [a + b for a in left for b in right]
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body, scope, depth + 1) + self.values(
                expr.orelse, scope, depth + 1
            )
        if isinstance(expr, ast.Name):
            return self._name(expr.id, scope, depth)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            helper = self.functions.get(expr.func.id)
            if helper is not None:
                returns = [n.value for n in ast.walk(helper) if isinstance(n, ast.Return)]
                return [
                    v for r in returns if r is not None for v in self.values(r, helper, depth + 1)
                ]
        return [ANY]

    def _name(self, name: str, scope: ast.FunctionDef | None, depth: int) -> list[str]:
        if scope is not None:
            bound = [
                n.value
                for n in ast.walk(scope)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
            ]
            if bound:
                return [v for b in bound for v in self.values(b, scope, depth + 1)]
            if name in {a.arg for a in scope.args.args + scope.args.kwonlyargs}:
                return [ANY]
        if name in self.consts:
            return self.values(self.consts[name], None, depth + 1)
        return [ANY]

    def sent(self) -> Iterator[Sent]:
        for function in ast.walk(self.tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                found = self._send(call)
                if found is None or not isinstance(call, ast.Call):
                    continue
                method, path = found
                where = f"{self.name}:{call.lineno}"
                for value in self.values(path, function):
                    yield Sent(method, value.split("?", 1)[0], where)

    @staticmethod
    def _send(node: ast.AST) -> tuple[str, ast.expr] | None:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return None
        attr, args = node.func.attr, node.args
        if attr in _SENDS and args:
            return _SENDS[attr], args[0]
        if attr == "request" and len(args) >= 2 and isinstance(args[0], ast.Constant):
            return str(args[0].value), args[1]
        return None


def cli_requests() -> list[Sent]:
    """What the CLI sends to /admin/v1 and /tenant/v1 (`{*}` where the user decides)."""
    root = Path(bulkhead.cli.__file__).parent
    found = [s for p in sorted(root.glob("*.py")) for s in _Module(p).sent()]
    return [s for s in found if s.path.startswith(SURFACES)]
