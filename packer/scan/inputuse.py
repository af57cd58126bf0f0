"""What execute() does with each input, read from model.py's AST (never run).

Made-up inputs break models that validate or decode what they get: ``Image.open`` of bytes that
are not an image, ``h, w, c = x.shape`` on a rank-1 tensor, ``json.loads`` of a word. This
follows each ``get_input_tensor_by_name(request, "NAME")`` through local variables, loops,
comprehensions and the helper functions and methods of the same file, to the calls that consume
it, and records each consumption as a ``Use``. ``verify.expect_inputs`` turns the uses into a
request that code accepts.

A value is tracked as a ``Taint``: the input it came from, the decoding steps on the way
(``b64``, ``text``, ``json``, ``key:K``, ``item``), and for an array how many leading dimensions
were indexed away (``x[0]``, ``for row in x``), so that ``h, w, c = x[0].shape`` means rank 4.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path

_IMAGE_DECODERS = frozenset({"imdecode", "decode_image", "decode_png", "decode_jpeg",
                             "decode_bmp", "imread", "imfrombytes"})
_B64 = frozenset({"b64decode", "decodebytes", "urlsafe_b64decode", "standard_b64decode",
                  "decodestring"})
_FETCH = frozenset({"get", "post", "urlopen", "urlretrieve", "request", "head"})
_JSON_MODULES = frozenset({"json", "orjson", "ujson", "simplejson", "rapidjson"})
# calls and methods that keep an array's dimensions as they are
_SAME = frozenset({"array", "asarray", "ascontiguousarray", "astype", "copy", "float", "double",
                   "half", "to", "cpu", "cuda", "numpy", "from_numpy", "tensor", "as_tensor",
                   "from_dlpack", "as_numpy", "to_dlpack", "contiguous", "detach", "tobytes",
                   "BytesIO", "bytes", "bytearray", "clip", "round"})
_TEXT_METHODS = frozenset({"strip", "lower", "upper", "lstrip", "rstrip", "replace", "format",
                           "casefold", "title"})
_SHAPES = frozenset({"reshape", "view", "resize_"})
_TRANSPOSE = frozenset({"transpose", "permute"})
MAX_DEPTH = 6  # helper calls followed, nested


@dataclass(frozen=True)
class Use:
    """One thing the code does with (a value derived from) an input.

    ``kind``: image (the bytes at ``path`` are an encoded image), b64, json, text, sentence
    (text handed to a tokenizer), number, key (``args``: name, default), item (a JSON list),
    and for arrays: unpack (``args``: the names ``x.shape`` is unpacked to), rank, min_rank,
    dim (``args``: index, size; a negative size -N: at least N), image_array (an OpenCV or
    PIL call takes it as an HxWxC image), reshape (``args``: the literal shape), tobytes
    (``x.tobytes()`` of the array with ``offset`` dims indexed away), model_name (a BLS
    request calls the model it names)."""

    input: str
    line: int
    kind: str
    path: tuple[str, ...] = ()
    offset: int | None = 0
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Taint:
    input: str
    path: tuple[str, ...] = ()
    offset: int | None = 0
    marker: str = ""  # "shape": x.shape; "dim:K": x.shape[K]; "ndim": x.ndim or len(x.shape)
    cast: bool = False  # made another dtype than the tensor's (x.astype(bytes)): not objects

    @property
    def array(self) -> bool:
        return not self.path and not self.marker

    @property
    def json(self) -> bool:
        return bool(self.path) and (self.path[-1] == "json" or self.path[-1] == "item"
                                    or self.path[-1].startswith("key:"))


Taints = tuple[Taint, ...]


@dataclass
class _Env:
    values: dict[str, Taints] = field(default_factory=dict)
    strings: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def child(self) -> _Env:
        return _Env(dict(self.values), dict(self.strings))


def _dotted(node: ast.AST) -> str:
    """``np.random.rand`` for an attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _ints(node: ast.AST) -> tuple[int, ...]:
    """The int constants of ``3`` or ``(3, 4)`` or ``[1, -1, 3]``; () otherwise."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    out = []
    for item in items:
        if isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub) and \
                isinstance(item.operand, ast.Constant) and type(item.operand.value) is int:
            out.append(-item.operand.value)
        elif isinstance(item, ast.Constant) and type(item.value) is int:
            out.append(item.value)
        else:
            return ()
    return tuple(out)


_OBJECT = frozenset({"object", "object_", "O", "|O"})


def _casts(last: str, node: ast.Call) -> bool:
    """``x.astype(bytes)``, ``np.array(x, dtype="S")``: an array of another dtype than a BYTES
    tensor's objects, whose ``.tobytes()`` is its content, not its elements' addresses."""
    dtype = next((k.value for k in node.keywords if k.arg == "dtype"), None)
    if dtype is None and last == "astype" and node.args:
        dtype = node.args[0]
    if dtype is None:
        return False
    name = dtype.value if isinstance(dtype, ast.Constant) else _dotted(dtype).rsplit(".", 1)[-1]
    return name not in _OBJECT


def _shift(taint: Taint, by: int) -> Taint:
    return replace(taint, offset=None if taint.offset is None else taint.offset + by)


class _Walker:
    def __init__(self, tree: ast.Module):
        self.uses: list[Use] = []
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.methods: set[str] = set()
        self.strings: dict[str, tuple[str, ...]] = {}
        self.stack: list[str] = []
        self._index(tree)

    def _index(self, tree: ast.Module) -> None:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, node)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        key = item.name
                        if node.name == "TritonPythonModel" or key not in self.functions:
                            self.functions[key] = item
                            self.methods.add(key)
        for each in ast.walk(tree):  # NAME = "INPUT0", self.name = "INPUT0"
            if isinstance(each, ast.Assign) and isinstance(each.value, ast.Constant) and \
                    isinstance(each.value.value, str):
                for target in each.targets:
                    key = _dotted(target)
                    if key:
                        self.strings[key] = (each.value.value,)

    def record(self, taints: Taints, node: ast.AST, kind: str, *args: object,
               domain: str = "any") -> None:
        for t in taints:
            if domain == "array" and not t.array:
                continue
            if domain == "bytes" and t.marker:
                continue
            self.uses.append(Use(t.input, getattr(node, "lineno", 0), kind, t.path, t.offset,
                                 tuple(args)))

    # -- functions ------------------------------------------------------------------------

    def run(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, env: _Env) -> Taints:
        if fn.name in self.stack or len(self.stack) >= MAX_DEPTH:
            return ()
        self.stack.append(fn.name)
        try:
            returned: list[Taint] = []
            self.block(fn.body, env, returned)
            return tuple(dict.fromkeys(returned))
        finally:
            self.stack.pop()

    def helper(self, name: str, node: ast.Call, env: _Env, via_self: bool) -> Taints | None:
        fn = self.functions.get(name)
        if fn is None or (via_self and name not in self.methods):
            return None
        callee = _Env({k: v for k, v in env.values.items() if k.startswith("self.")},
                      dict(env.strings))
        params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
        if params and params[0] in ("self", "cls") and name in self.methods:
            params = params[1:]
        for param, arg in zip(params, node.args, strict=False):
            callee.values[param] = self.expr(arg, env)
        for kw in node.keywords:
            if kw.arg:
                callee.values[kw.arg] = self.expr(kw.value, env)
        return self.run(fn, callee)

    # -- statements -----------------------------------------------------------------------

    def block(self, body: list[ast.stmt], env: _Env, returned: list[Taint]) -> None:
        for stmt in body:
            self.stmt(stmt, env, returned)

    def stmt(self, node: ast.stmt, env: _Env, returned: list[Taint]) -> None:
        if isinstance(node, ast.Assign):
            value = self.expr(node.value, env)
            for target in node.targets:
                self.bind(target, value, env, node)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            if node.value is not None:
                value = self.expr(node.value, env)
                if isinstance(node, ast.AugAssign):
                    value = (*self.expr(node.target, env), *value)
                self.bind(node.target, value, env, node)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.loop(node.target, node.iter, env)
            self.block(node.body, env, returned)
            self.block(node.orelse, env, returned)
        elif isinstance(node, ast.If | ast.While):
            self.expr(node.test, env)
            self.block(node.body, env, returned)
            self.block(node.orelse, env, returned)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                value = self.expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, value, env, node)
            self.block(node.body, env, returned)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse,
                         node.finalbody):
                self.block(part, env, returned)
        elif isinstance(node, ast.Return) and node.value is not None:
            returned.extend(self.expr(node.value, env))
        elif isinstance(node, ast.Expr):
            self.expr(node.value, env)
        elif isinstance(node, ast.Assert):
            self.expr(node.test, env)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            self.expr(node.exc, env)

    def bind(self, target: ast.AST, value: Taints, env: _Env, node: ast.AST) -> None:
        key = _dotted(target)
        if key and isinstance(target, ast.Name | ast.Attribute):
            env.values[key] = value
            return
        if not isinstance(target, ast.Tuple | ast.List):
            return
        shapes = tuple(t for t in value if t.marker in ("shape", "shape[:]"))
        names = ["*" if isinstance(e, ast.Starred) else _dotted(e) or "_" for e in target.elts]
        if shapes:  # h, w, c = x.shape (h, w = x.shape[:2] said min_rank already)
            whole = tuple(t for t in shapes if t.marker == "shape")
            if "*" in names:
                self.record(whole, node, "min_rank", len(names) - 1)
            else:
                self.record(whole, node, "unpack", *names)
            for i, elt in enumerate(target.elts):
                if isinstance(elt, ast.Name):
                    env.values[elt.id] = tuple(replace(t, marker=f"dim:{i}") for t in shapes)
            return
        for elt in target.elts:
            self.bind(elt, tuple(replace(t, offset=None) for t in value if not t.marker), env,
                      node)

    def loop(self, target: ast.AST, iterable: ast.expr, env: _Env) -> None:
        """``for item in x``: an element of an array (one dimension less), of a JSON list,
        or a literal list of input names."""
        if isinstance(iterable, ast.List | ast.Tuple) and isinstance(target, ast.Name):
            names = [e.value for e in iterable.elts if isinstance(e, ast.Constant)
                     and isinstance(e.value, str)]
            if names and len(names) == len(iterable.elts):
                env.strings[target.id] = tuple(names)
                return
        call = iterable if isinstance(iterable, ast.Call) else None
        if call and _dotted(call.func) == "enumerate" and call.args and \
                isinstance(target, ast.Tuple) and len(target.elts) == 2:
            self.bind(target.elts[1], self.items(self.expr(call.args[0], env), iterable), env,
                      iterable)
            return
        self.bind(target, self.items(self.expr(iterable, env), iterable), env, iterable)

    def items(self, taints: Taints, node: ast.AST) -> Taints:
        out = []
        for t in taints:
            if t.marker:
                continue
            if t.json:
                self.record((t,), node, "item")
                out.append(replace(t, path=(*t.path, "item")))
            else:
                out.append(_shift(t, 1) if t.array else t)
        return tuple(out)

    # -- expressions ----------------------------------------------------------------------

    def children(self, node: ast.AST, env: _Env) -> Taints:
        out: list[Taint] = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                out.extend(self.expr(child, env))
        return tuple(out)

    def expr(self, node: ast.expr, env: _Env) -> Taints:
        if isinstance(node, ast.Name):
            return env.values.get(node.id, ())
        if isinstance(node, ast.Attribute):
            return self.attribute(node, env)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, env)
        if isinstance(node, ast.Call):
            return self.call(node, env)
        if isinstance(node, ast.Compare):
            self.compare(node, env)
            return ()
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp | ast.DictComp):
            inner = env.child()
            for gen in node.generators:
                self.loop(gen.target, gen.iter, inner)
                for cond in gen.ifs:
                    self.expr(cond, inner)
            parts = (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)
            return tuple(_shift(t, -1) if t.array else t
                         for part in parts for t in self.expr(part, inner))
        if isinstance(node, ast.List | ast.Tuple):
            return tuple(replace(t, offset=None) if t.array else t
                         for t in self.children(node, env))
        if isinstance(node, ast.BinOp):
            self.number_with(node.left, node.right, env)
            return (*self.expr(node.left, env), *self.expr(node.right, env))
        return self.children(node, env)

    def attribute(self, node: ast.Attribute, env: _Env) -> Taints:
        key = _dotted(node)
        if key.startswith("self."):
            return env.values.get(key, ())
        base = self.expr(node.value, env)
        if node.attr == "shape":
            return tuple(replace(t, marker="shape") for t in base if t.array)
        if node.attr == "ndim":
            return tuple(replace(t, marker="ndim") for t in base if t.array)
        return tuple(replace(t, offset=None) if node.attr == "T" else t for t in base)

    def subscript(self, node: ast.Subscript, env: _Env) -> Taints:
        base = self.expr(node.value, env)
        self.expr(node.slice, env)
        index = node.slice
        out = []
        for t in base:
            if t.marker == "shape":
                k = _ints(index)
                if len(k) == 1:
                    out.append(replace(t, marker=f"dim:{k[0]}"))
                    self.record((t,), node, "min_rank", k[0] + 1 if k[0] >= 0 else -k[0])
                elif isinstance(index, ast.Slice) and index.lower is None and \
                        index.upper is not None and _ints(index.upper):
                    self.record((t,), node, "min_rank", _ints(index.upper)[0])
                    out.append(replace(t, marker="shape[:]"))
            elif t.json:
                if isinstance(index, ast.Constant) and isinstance(index.value, str):
                    self.record((t,), node, "key", index.value, None)
                    out.append(replace(t, path=(*t.path, f"key:{index.value}")))
                else:
                    self.record((t,), node, "item")
                    out.append(replace(t, path=(*t.path, "item")))
            elif t.array:
                parts = index.elts if isinstance(index, ast.Tuple) else [index]
                dropped = sum(1 for p in parts if not isinstance(p, ast.Slice)
                              and not (isinstance(p, ast.Constant) and p.value is None))
                out.append(_shift(t, dropped))
            elif not t.marker:
                out.append(t)
        return tuple(out)

    def compare(self, node: ast.Compare, env: _Env) -> None:
        """``x.shape[2] != 3``: dim 2 is 3; ``h < 224``: dim at least 224; ``x.ndim == 3``;
        a JSON value compared with a number is a number."""
        operands = [node.left, *node.comparators]
        taints = [self.expr(x, env) for x in operands]
        for i, op in enumerate(node.ops):
            exact = isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn)
            for a, b in ((i, i + 1), (i + 1, i)):
                other = operands[b]
                if isinstance(other, ast.Constant) and type(other.value) in (int, float):
                    self.record(tuple(t for t in taints[a] if t.json), node, "number")
                values = _ints(operands[b])
                if not values:
                    continue
                for t in taints[a]:
                    if t.marker.startswith("dim:"):
                        size = (3 if 3 in values else values[0]) if exact else -max(values)
                        self.record((replace(t, marker=""),), node, "dim",
                                    int(t.marker[4:]), size)
                    elif t.marker == "ndim" and exact:
                        self.record((replace(t, marker=""),), node, "rank", *values)

    def number_with(self, a: ast.expr, b: ast.expr, env: _Env) -> None:
        """``d["scale"] * 2``: a JSON value in arithmetic with a number is a number."""
        for x, y in ((a, b), (b, a)):
            if isinstance(y, ast.Constant) and type(y.value) in (int, float):
                self.record(tuple(t for t in self.expr(x, env) if t.json), x, "number")

    def names(self, node: ast.expr, env: _Env) -> tuple[str, ...]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (node.value,)
        key = _dotted(node)
        return env.strings.get(key) or self.strings.get(key) or ()

    def call(self, node: ast.Call, env: _Env) -> Taints:
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1] if name else (
            node.func.attr if isinstance(node.func, ast.Attribute) else "")
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if last == "get_input_tensor_by_name" and len(node.args) >= 2:
            self.expr(node.args[0], env)
            return tuple(Taint(n) for n in self.names(node.args[1], env))
        first = self.expr(node.args[0], env) if node.args else ()
        args = (*first, *(t for a in (*node.args[1:], *(k.value for k in node.keywords))
                          for t in self.expr(a, env)))
        mine = self.expr(receiver, env) if receiver is not None else ()
        for kw in node.keywords:  # InferenceRequest(model_name=...): BLS calls the model named
            if kw.arg == "model_name":
                self.record(self.expr(kw.value, env), node, "model_name", domain="bytes")
        found = self.sink(name, last, node, args, mine, first)
        if found is not None:
            return found
        if mine:
            return self.method(last, node, mine)
        local = self.helper(last, node, env, via_self=_dotted(receiver or node) == "self") \
            if (receiver is None or _dotted(receiver) == "self") else None
        if local is not None:
            return local
        if last in _SAME:
            cast = _casts(last, node)
            return tuple(replace(t, cast=t.cast or cast) for t in args)
        return tuple(replace(t, offset=None) if t.array else t for t in args if not t.marker)

    def sink(self, name: str, last: str, node: ast.Call, args: Taints, mine: Taints,
             first: Taints) -> Taints | None:
        """A call that decodes or checks its argument: recorded; what it returns."""
        module = name.split(".")[0] if "." in name else ""
        if last in _FETCH and not mine:  # requests.get(url): what comes back is not the input
            return ()
        if (last in _IMAGE_DECODERS or name.endswith("Image.open")) and args:
            self.record(args, node, "image", domain="bytes")
            return ()
        if last in _B64 and args:
            self.record(args, node, "b64", domain="bytes")
            return tuple(replace(t, path=(*t.path, "b64"), offset=None) for t in args
                         if not t.marker)
        if last in ("loads", "load") and module in _JSON_MODULES and args:
            self.record(args, node, "json", domain="bytes")
            return tuple(replace(t, path=(*t.path, "json"), offset=None) for t in args
                         if not t.marker)
        if "token" in name.lower() and (args or mine):
            self.record(args, node, "sentence", domain="bytes")
            return ()
        if name == "str" and first:
            self.record(first, node, "text", domain="bytes")
            return tuple(replace(t, path=(*t.path, "text"), offset=None) for t in first
                         if not t.marker)
        if name in ("float", "int") and args:
            self.record(tuple(t for t in args if t.json), node, "number")
            return ()
        if name == "len" and args:
            return tuple(replace(t, marker="ndim") for t in args if t.marker == "shape")
        if (module == "cv2" or last == "fromarray") and first:
            self.record(first, node, "image_array", domain="array")
            return tuple(replace(t, offset=None) for t in args if t.array)
        if module in ("np", "numpy", "torch") and args:
            return self.numpy(last, node, args)
        return None

    def numpy(self, last: str, node: ast.Call, args: Taints) -> Taints | None:
        arrays = tuple(t for t in args if t.array)
        if last == "reshape" and len(node.args) >= 2 and _ints(node.args[1]):
            self.record(arrays, node, "reshape", *_ints(node.args[1]))
        elif last in _TRANSPOSE and len(node.args) >= 2 and _ints(node.args[1]):
            self.record(arrays, node, "rank", len(_ints(node.args[1])))
        elif last in _SAME or last == "frombuffer":
            cast = _casts(last, node)
            return tuple(replace(t, cast=t.cast or cast) for t in args if not t.marker)
        else:
            return None
        return tuple(replace(t, offset=None) for t in arrays)

    def method(self, last: str, node: ast.Call, mine: Taints) -> Taints:
        """A method of a tracked value: ``x.decode()``, ``d.get("k")``, ``x.reshape(...)``."""
        if last == "decode":
            self.record(mine, node, "text", domain="bytes")
            return tuple(replace(t, path=(*t.path, "text"), offset=None) for t in mine
                         if not t.marker)
        if last == "get" and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str):
            key = node.args[0].value
            default = node.args[1].value if len(node.args) > 1 and \
                isinstance(node.args[1], ast.Constant) else None
            json = tuple(t for t in mine if t.json)
            self.record(json, node, "key", key, default)
            return tuple(replace(t, path=(*t.path, f"key:{key}")) for t in json)
        literal = _ints(node.args[0]) if len(node.args) == 1 else \
            _ints(ast.Tuple(elts=list(node.args)))
        if last == "tobytes":  # of a BYTES tensor's array: its elements' addresses
            self.record(tuple(t for t in mine if not t.cast), node, "tobytes", domain="array")
        if last in _SHAPES and literal:
            self.record(mine, node, "reshape", *literal, domain="array")
        elif last in _TRANSPOSE and literal:
            self.record(mine, node, "rank", len(literal), domain="array")
        if last in _SAME or last in _TEXT_METHODS:
            cast = _casts(last, node)
            return tuple(replace(t, cast=t.cast or cast) for t in mine if not t.marker)
        return tuple(replace(t, offset=None) if t.array else t for t in mine if not t.marker)


def _execute(tree: ast.Module) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "TritonPythonModel":
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and \
                        item.name == "execute":
                    return item
    return None


def answers_nothing(model_py: Path) -> int | None:
    """The line of an execute() that returns no responses (``pass``, a bare ``return``, only
    ``return None``), or None: a model that is not decoupled then never answers a request."""
    try:
        tree = ast.parse(model_py.read_text(encoding="utf-8"), filename=str(model_py))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
        return None
    fn = _execute(tree)
    if fn is None:
        return None
    for node in ast.walk(fn):
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return None
        if isinstance(node, ast.Yield | ast.YieldFrom | ast.Raise):
            return None
    return fn.lineno


def input_uses(model_py: Path) -> tuple[Use, ...]:
    """Every use execute() makes of its inputs, in source order; () when model.py cannot be
    read or parsed (the scan has said why) or has no execute()."""
    try:
        tree = ast.parse(model_py.read_text(encoding="utf-8"), filename=str(model_py))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
        return ()
    fn = _execute(tree)
    if fn is None:
        return ()
    walker = _Walker(tree)
    try:
        walker.run(fn, _Env())
    except RecursionError:  # an expression nested deeper than the walker's stack
        return ()
    return tuple(sorted(dict.fromkeys(walker.uses), key=lambda u: u.line))


