"""Safe arithmetic-and-comparison expressions over named numbers (``vmapsim bisect --metric``).

An expression such as ``cache_lines_per_op < 40 and struct_vmap_area_size == 48``
is parsed with :mod:`ast` and evaluated by walking the tree here: nothing is
passed to ``eval`` or ``compile``.  Allowed: names (``rotations``, and dotted
names such as ``lock.free_vmap_area_lock``), int and float numbers,
comparisons (``< <= > >= == !=``, chained), ``and`` / ``or`` / ``not``,
``+ - * /`` (and unary ``-`` / ``+``) and parentheses.  Anything else (calls,
subscripts, strings, ``**``, lambdas, ...) is rejected with a message naming
the construct.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attrs import frozen

__all__ = ["Expr", "ExprError", "parse_expr"]


class ExprError(ValueError):
    """A malformed expression, an unknown name, or a value that cannot be computed."""


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_SYMBOL = {
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_BOOLEAN_TOP = (ast.Compare, ast.BoolOp)


def _dotted(node: ast.expr) -> str | None:
    """``lock.free_vmap_area_lock`` -> that string; None if not a plain dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _describe(node: ast.AST) -> str:
    names = {
        ast.Call: "function calls",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambdas",
        ast.IfExp: "conditional expressions",
        ast.NamedExpr: "assignment expressions",
        ast.List: "lists",
        ast.Tuple: "tuples",
        ast.Dict: "dicts",
        ast.Set: "sets",
        ast.Starred: "starred expressions",
        ast.JoinedStr: "f-strings",
        ast.ListComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.Attribute: "attribute access",
        ast.Await: "await",
    }
    return names.get(type(node), type(node).__name__)


@frozen
class Expr:
    """A parsed expression: its source, its tree and the names it reads."""

    source: str
    tree: ast.expr
    names: tuple[str, ...]

    def evaluate(self, values: Mapping[str, float] | Callable[[str], float]) -> Any:
        """The expression's value, reading each name from ``values``."""
        get = values if callable(values) else values.__getitem__
        return _eval(self.tree, get, self.source)


def _check(node: ast.AST, source: str, names: list[str]) -> None:
    """Reject every construct outside the grammar; collect the names read."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExprError(
                f"{source!r}: only numbers are allowed as constants (got {node.value!r})"
            )
        return
    if isinstance(node, ast.Name | ast.Attribute):
        name = _dotted(node)
        if name is None:
            raise ExprError(f"{source!r}: attribute access is allowed only on names")
        if name not in names:
            names.append(name)
        return
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ExprError(
                    f"{source!r}: comparison {_SYMBOL.get(type(op), op)!r} is not allowed"
                )
        for sub in (node.left, *node.comparators):
            _check(sub, source, names)
        return
    if isinstance(node, ast.BoolOp):
        for sub in node.values:
            _check(sub, source, names)
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExprError(
                f"{source!r}: operator {_SYMBOL.get(type(node.op), type(node.op).__name__)!r} "
                "is not allowed (use + - * /)"
            )
        _check(node.left, source, names)
        _check(node.right, source, names)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise ExprError(
                f"{source!r}: operator {_SYMBOL.get(type(node.op), '?')!r} is not allowed"
            )
        _check(node.operand, source, names)
        return
    raise ExprError(
        f"{source!r}: {_describe(node)} are not allowed (only names, numbers, comparisons, "
        "and/or/not, + - * / and parentheses)"
    )


def parse_expr(
    source: str,
    *,
    known: Callable[[str], bool] | Iterable[str] | None = None,
    listing: Iterable[str] | None = None,
    boolean: bool = True,
) -> Expr:
    """Parse ``source``; every name it reads must satisfy ``known``.

    ``known`` is a set of names or a predicate (None accepts any name).  The
    error for an unknown name lists ``listing`` (default: ``known`` when it is
    a collection).  With ``boolean`` the expression must be a comparison or a
    boolean combination of them.
    """
    if not isinstance(source, str) or not source.strip():
        raise ExprError("expression: must be a non-empty string (e.g. 'cache_lines_per_op < 40')")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"{source!r}: not a valid expression ({exc.msg})") from None
    names: list[str] = []
    _check(tree.body, source, names)
    if boolean and not (
        isinstance(tree.body, _BOOLEAN_TOP)
        or (isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not))
    ):
        raise ExprError(
            f"{source!r}: must be a comparison (e.g. 'cache_lines_per_op < 40'), "
            "or comparisons joined by and/or"
        )
    if known is not None:
        accept = known if callable(known) else set(known).__contains__
        shown = sorted(listing if listing is not None else ([] if callable(known) else known))
        for name in names:
            if not accept(name):
                raise ExprError(f"{source!r}: unknown name {name!r}; available: {', '.join(shown)}")
    return Expr(source.strip(), tree.body, tuple(names))


def _eval(node: ast.expr, get: Callable[[str], float], source: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        return get(_dotted(node))  # type: ignore[arg-type]
    if isinstance(node, ast.Compare):
        left = _eval(node.left, get, source)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, get, source)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            value: Any = True
            for sub in node.values:
                value = _eval(sub, get, source)
                if not value:
                    return value
            return value
        value = False
        for sub in node.values:
            value = _eval(sub, get, source)
            if value:
                return value
        return value
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, get, source)
        right = _eval(node.right, get, source)
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"{source!r}: division by zero") from None
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, get, source)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    raise ExprError(f"{source!r}: cannot evaluate {_describe(node)}")  # pragma: no cover
