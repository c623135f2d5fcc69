"""Which kernel variables a ``%%remote`` cell reads, and which names it assigns.

::

    cell source ──ast──► names read before the cell binds them ──► shipped from the kernel
                    ├──► names assigned at top level          ──► Futures in the kernel
                    └──► does it end with an expression?       ──► the cell's result

Top-level statements are followed in execution order, so ``x = 1; print(x)`` reads
nothing while ``x = x + 1`` reads ``x``. A name bound only on some paths (in one branch
of an ``if``, in a loop body, in a ``try``) may still be read from the kernel later, so it
is shipped when the kernel has it. Function, lambda, class and comprehension bodies run
later or in a scope of their own: every global they read counts as read where they are
defined, which can ship a variable that turns out not to be needed but never misses one.

A cell that does not compile as Python may use what only the kernel can run: IPython's
transformer turns ``%magic``, ``!cmd`` and ``x?`` into ``get_ipython()`` calls, which
:func:`kernel_only` finds and names, as it names a ``return`` or ``yield`` outside a
function.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass(frozen=True)
class CellNames:
    """What a cell needs from the kernel and what it gives back."""

    reads: frozenset[str]
    """Names the cell may read before binding them itself."""
    assigns: tuple[str, ...]
    """Names bound at top level by assignment, ``def`` or ``class``, in order of appearance."""
    imports: frozenset[str]
    """Names bound only by ``import`` (modules are not sent back)."""
    ends_with_expression: bool
    """The last statement is an expression: its value is the cell's result."""


def analyse(source: str) -> CellNames:
    """Analyse a cell; raises ``SyntaxError`` for code that does not parse."""
    tree = ast.parse(source)
    walker = _TopLevel()
    walker.statements(tree.body)
    imported = walker.imported - set(walker.assigned)
    return CellNames(
        reads=frozenset(walker.reads),
        assigns=tuple(n for n in walker.assigned if n not in imported),
        imports=frozenset(imported),
        ends_with_expression=bool(tree.body) and isinstance(tree.body[-1], ast.Expr),
    )


# -- what only the kernel can run ---------------------------------------------------------

_OUTSIDE = {
    "'return' outside function": "`return` outside a function: the value of a %%remote cell is "
    "its last expression (bind it with %%remote NAME)",
    "'yield' outside function": "`yield` outside a function: define a generator function in the "
    "cell and call it",
}


def kernel_only(source: str, transform: Callable[[str], str], error: SyntaxError) -> str | None:
    """Why a ``%%remote`` cell body that raised ``error`` cannot run on a worker, said for
    a user (None: an ordinary syntax error). ``transform`` is IPython's cell transformer.
    Lines are counted as in the cell, whose first line is ``%%remote``."""
    for message, why in _OUTSIDE.items():
        if error.msg.startswith(message):
            return f"line {error.lineno or 1}: {why}"
    try:
        tree = ast.parse(transform(source))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        found = _ipython_call(node)
        if found is None:
            continue
        method, args = found
        line = node.lineno + 1  # type: ignore[attr-defined]
        first = args[0] if args else ""
        if method in ("system", "getoutput"):
            return (
                f"line {line}: `!{first}` is a shell command, which IPython runs in the kernel; "
                f"in a %%remote cell, run it with subprocess.run({first!r}, shell=True)"
            )
        if method == "run_line_magic" and first.startswith("pinfo"):
            return f"line {line}: `{args[1]}?` asks IPython for help, which works in local cells only"
        if method == "run_line_magic":
            return (
                f"line {line}: `%{first}` is an IPython magic; magics run in the kernel, "
                "not in a %%remote cell (run it in a local cell)"
            )
        if method == "run_cell_magic":
            return f"line {line}: `%%{first}` is a cell magic; a cell has one, on its first line"
        return f"line {line}: `{method}` needs IPython, which runs in the kernel, not in a %%remote cell"
    return None


def _ipython_call(node: ast.AST) -> tuple[str, list[str]] | None:
    """``get_ipython().method('a', 'b')`` -> ``("method", ["a", "b"])``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)):
        return None
    if owner.func.id != "get_ipython":
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return node.func.attr, args


# -- nested scopes: flow-insensitive ------------------------------------------------------


def _expression_reads(node: ast.AST) -> set[str]:
    """Names an expression reads from the scope it is evaluated in."""
    reads: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Load):
                reads.add(n.id)
            continue
        if isinstance(n, _FUNCTIONS):
            stack.extend(_evaluated_at_definition(n))
            reads |= _function_reads(n)
            continue
        if isinstance(n, _COMPREHENSIONS):
            stack.append(n.generators[0].iter)  # evaluated in the enclosing scope
            reads |= _comprehension_reads(n)
            continue
        stack.extend(ast.iter_child_nodes(n))
    return reads


def _evaluated_at_definition(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.AST]:
    """Decorators, defaults and annotations: evaluated where the function is defined."""
    args = fn.args
    out: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if not isinstance(fn, ast.Lambda):
        out += fn.decorator_list
        all_args = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        out += [a.annotation for a in all_args if a is not None and a.annotation is not None]
        if fn.returns is not None:
            out.append(fn.returns)
    return out


def _parameters(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _function_reads(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    body: list[ast.AST] = [fn.body] if isinstance(fn, ast.Lambda) else list(fn.body)
    return _scope_reads(body, _parameters(fn.args), encloses=True)


def _comprehension_reads(comp: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> set[str]:
    parts: list[ast.AST] = [comp.key, comp.value] if isinstance(comp, ast.DictComp) else [comp.elt]
    first = True
    for gen in comp.generators:
        parts.append(gen.target)
        if not first:
            parts.append(gen.iter)
        first = False
        parts.extend(gen.ifs)
    return _scope_reads(parts, set(), encloses=True)


def _scope_reads(nodes: list[ast.AST], params: set[str], encloses: bool) -> set[str]:
    """Names a scope reads from outside itself: loads it never binds, and what nested
    scopes read that it does not bind (a class body does not enclose its methods)."""
    stores: set[str] = set(params)
    loads: set[str] = set()
    declared: set[str] = set()
    nested: set[str] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else stores).add(n.id)
            continue
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
            continue
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            stores.update(_import_names(n))
            continue
        bound = _bound_name(n)
        if bound:
            stores.add(bound)
        if isinstance(n, _FUNCTIONS):
            stack.extend(_evaluated_at_definition(n))
            nested |= _function_reads(n)
            continue
        if isinstance(n, ast.ClassDef):
            stack.extend([*n.decorator_list, *n.bases, *(k.value for k in n.keywords)])
            nested |= _scope_reads(list(n.body), set(), encloses=False)
            continue
        if isinstance(n, _COMPREHENSIONS):
            stack.append(n.generators[0].iter)
            nested |= _comprehension_reads(n)
            continue
        stack.extend(ast.iter_child_nodes(n))
    local = stores - declared
    if encloses:
        return (loads - local) | (nested - local)
    return (loads - local) | nested


def _bound_name(n: ast.AST) -> str | None:
    """The name a def, class, except handler or match capture binds."""
    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return n.name
    if isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return n.name
    if isinstance(n, ast.MatchMapping):
        return n.rest
    return None


def _import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":
            continue
        names.append(alias.asname or alias.name.split(".")[0])
    return names


# -- the top level: in execution order ---------------------------------------------------


class _TopLevel:
    def __init__(self) -> None:
        self.bound: set[str] = set()  # certainly bound at this point of the cell
        self.reads: set[str] = set()
        self.assigned: dict[str, None] = {}  # ordered set
        self.imported: set[str] = set()

    def read(self, names: set[str]) -> None:
        self.reads |= names - self.bound

    def bind(self, name: str) -> None:
        self.assigned.setdefault(name, None)
        self.bound.add(name)

    def expression(self, node: ast.AST | None) -> None:
        if node is None:
            return
        self.read(_expression_reads(node))
        for n in _walrus_targets(node):
            self.bind(n)

    def target(self, node: ast.AST) -> None:
        """An assignment target: plain names are bound, the rest is evaluated."""
        if isinstance(node, ast.Name):
            self.bind(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        else:  # obj.attr = ..., obj[key] = ...
            self.expression(node)

    def statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.statement(stmt)

    def branch(self, body: list[ast.stmt]) -> set[str]:
        """Run a block that may not execute; returns what it certainly binds."""
        saved = set(self.bound)
        self.statements(body)
        after, self.bound = self.bound, saved
        return after

    def statement(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Assign):
            self.expression(s.value)
            for t in s.targets:
                self.target(t)
        elif isinstance(s, ast.AugAssign):
            if isinstance(s.target, ast.Name):
                self.read({s.target.id})
            self.expression(s.value)
            self.target(s.target)
        elif isinstance(s, ast.AnnAssign):
            self.expression(s.annotation)
            if s.value is not None:
                self.expression(s.value)
                self.target(s.target)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in _evaluated_at_definition(s):
                self.expression(node)
            self.read(_function_reads(s))
            self.bind(s.name)
        elif isinstance(s, ast.ClassDef):
            for node in [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]:
                self.expression(node)
            self.read(_scope_reads(list(s.body), set(), encloses=False))
            self.bind(s.name)
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            for name in _import_names(s):
                self.imported.add(name)
                self.bound.add(name)
        elif isinstance(s, ast.Delete):
            for t in s.targets:
                if isinstance(t, ast.Name):
                    self.read({t.id})
                    self.bound.discard(t.id)
                else:
                    self.expression(t)
        elif isinstance(s, ast.If):
            self.expression(s.test)
            both = self.branch(s.body) & self.branch(s.orelse)
            self.bound |= both
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self.expression(s.iter)
            saved = set(self.bound)
            self.target(s.target)
            self.statements(s.body)
            self.bound = saved
            self.branch(s.orelse)
        elif isinstance(s, ast.While):
            self.expression(s.test)
            self.branch(s.body)
            self.branch(s.orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                self.expression(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.statements(s.body)
        elif isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
            self._try(s)
        elif isinstance(s, ast.Match):
            self.expression(s.subject)
            for case in s.cases:
                saved = set(self.bound)
                for node in ast.walk(case.pattern):
                    if isinstance(node, ast.expr):
                        self.expression(node)
                    captured = _bound_name(node)
                    if captured:
                        self.bind(captured)
                self.expression(case.guard)
                self.statements(case.body)
                self.bound = saved
        else:  # Expr, Assert, Raise, Return, Global, Pass, ...: evaluate what they contain
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.expr):
                    self.expression(child)

    def _try(self, s: ast.stmt) -> None:
        self.branch(s.body)  # type: ignore[attr-defined]
        for handler in s.handlers:  # type: ignore[attr-defined]
            saved = set(self.bound)
            self.expression(handler.type)
            if handler.name:  # unbound again when the handler ends
                self.bound.add(handler.name)
            self.statements(handler.body)
            self.bound = saved
        self.branch(s.orelse)  # type: ignore[attr-defined]
        self.statements(s.finalbody)  # type: ignore[attr-defined]


def _walrus_targets(node: ast.AST) -> list[str]:
    """``(y := ...)`` outside nested functions binds ``y`` in the enclosing scope."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _FUNCTIONS):
            continue
        if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
            out.append(n.target.id)
        stack.extend(ast.iter_child_nodes(n))
    return out
