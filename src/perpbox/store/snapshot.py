"""Snapshots of the service state as plain data (msgpack), the same in the pure and compiled builds.

Why not pickle: mypyc compiles the engine's hot classes (``setup.py``), and a compiled class's
``__new__`` runs its ``__init__``, so ``pickle.loads`` fails on every compiled class with required
constructor arguments (``MarketRules``: ``__init__() missing required argument 'spec'``) — and a
pickle written by one build names the other build's classes anyway.  This codec depends only on
the *names* of attributes, which the two builds share (the compiled build lists them in
``__mypyc_attrs__``, the pure one in ``__slots__`` or ``__dict__``), and it never calls anything but
the constructors of ``perpbox`` classes.

The format (``FORMAT_VERSION``)::

    b"PERPBOX-SNAPSHOT <version>\\n" + msgpack([meta, shapes, nodes, root])

* ``meta``: a map of plain values (``seq``, ``ts``, ``hash`` — what the snapshot covers);
* ``shapes``: ``[["module:QualName", [attribute names]], …]`` — one per (class, attribute set);
* ``nodes``: every non-scalar value once, so shared references and cycles (an order and its book
  level) come back as they were: ``["L", items]`` list, ``["T", items]`` tuple, ``["D", [k, v, …]]``
  dict, ``["S", items]`` set, ``["F", items]`` frozenset, ``["Q", maxlen, items]`` deque,
  ``["R", num, den]`` Fraction, ``["E", shape, value]`` enum member, ``["M", shape, values]``
  msgspec struct, ``["P", shape, parts]`` an object that gives its own state (``snapshot_state()``,
  rebuilt by its class's ``restore(parts)``: the exchange, whose components are wired anew),
  ``["O", shape, values]`` any other object (values in its shape's order);
* values are ``None``, bools, strings, bytes, floats and integers that fit 64 bits, or msgpack
  extensions: ``1`` a reference to a node (its index, 4 bytes big-endian), ``2`` an integer of any
  size (signed big-endian bytes), ``3`` an attribute that was not set.

Loading builds each object by calling its class with the constructor arguments named like its
attributes (so a compiled class gets a valid instance), then sets every attribute it recorded.  A
snapshot is refused (``SnapshotError``) when its header or version differ, a class or attribute no
longer exists, or an object's class now has an attribute the snapshot does not know (the state has
grown since: re-applying the log is the only exact way back).

Version rule: bump ``FORMAT_VERSION`` when this encoding changes, or when the engine keeps the same
attribute names with another meaning; added, removed or renamed attributes are caught without it.

Derived state is not stored: the exchange gives only its state objects (``Exchange.snapshot_state``),
and ``Exchange.restore`` rebuilds its components' wiring, dispatch tables, per-market ``MarketRules``
and ``MarketGate`` copies and the liquidation pre-filter.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import operator
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import msgspec

MAGIC = b"PERPBOX-SNAPSHOT "
FORMAT_VERSION = 3  # 2: the exchange stored as its components' state objects; 3: one part per component

_REF, _BIGINT, _UNSET = 1, 2, 3
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SCALARS = (type(None), bool, str, bytes, float)

class SnapshotError(Exception):
    """A snapshot that cannot be written or used (the message says why)."""


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


_DECLARED: dict[type, tuple[tuple[str, ...], bool]] = {}


def _declared(cls: type) -> tuple[tuple[str, ...], bool]:
    """The attribute names a class declares (mypyc's ``__mypyc_attrs__``, or ``__slots__`` along
    the MRO), and whether its instances may have a ``__dict__``."""
    got = _DECLARED.get(cls)
    if got is None:
        names: list[str] = []
        for k in reversed(cls.__mro__):
            attrs = vars(k).get("__mypyc_attrs__") or vars(k).get("__slots__") or ()
            names.extend([attrs] if isinstance(attrs, str) else attrs)
        kept = tuple(dict.fromkeys(n for n in names if not (n.startswith("__") and n.endswith("__"))))
        got = _DECLARED[cls] = (kept, hasattr(cls, "__dictoffset__") and cls.__dictoffset__ != 0)
    return got


def _attributes(obj: object) -> list[tuple[str, Any]]:
    """``(name, value)`` of every attribute of ``obj`` (unset: ``_Unset``)."""
    names, has_dict = _declared(type(obj))
    out: list[tuple[str, Any]] = []
    for name in names:
        try:
            out.append((name, getattr(obj, name)))
        except AttributeError:
            out.append((name, _Unset))
    if has_dict:
        d = getattr(obj, "__dict__", None)
        if d:
            seen = set(names)
            out.extend((n, v) for n, v in d.items() if n not in seen)
    return out


class _Unset:
    """Marks an attribute that was not set when the snapshot was written."""


# ==================================================================================================
# writing
# ==================================================================================================
class _Writer:
    def __init__(self) -> None:
        self.shapes: list[list[Any]] = []
        self.shape_ids: dict[tuple[type, tuple[str, ...]], int] = {}
        self.nodes: list[Any] = []
        self.memo: dict[int, msgspec.msgpack.Ext] = {}
        self.keep: list[Any] = []  # objects made while writing stay alive, so their ids stay unique
        self.todo: list[tuple[int, Any]] = []
        self.fast: dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]] | None] = {}

    def shape(self, cls: type, names: tuple[str, ...]) -> int:
        key = (cls, names)
        sid = self.shape_ids.get(key)
        if sid is None:
            sid = self.shape_ids[key] = len(self.shapes)
            self.shapes.append([_class_name(cls), list(names)])
        return sid

    def value(self, v: Any) -> Any:
        t = type(v)
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else msgspec.msgpack.Ext(
                _BIGINT, v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True))
        if t in _SCALARS:
            return v
        if v is _Unset:
            return msgspec.msgpack.Ext(_UNSET, b"")
        ref = self.memo.get(id(v))
        if ref is None:
            idx = len(self.nodes)
            ref = self.memo[id(v)] = msgspec.msgpack.Ext(_REF, idx.to_bytes(4, "big"))
            self.nodes.append(None)
            self.keep.append(v)
            self.todo.append((idx, v))
        return ref

    def node(self, v: Any, path: str) -> list[Any]:
        val = self.value
        t = type(v)
        if t is list:
            return ["L", [val(x) for x in v]]
        if t is dict:
            flat: list[Any] = []
            for k, x in v.items():
                flat.append(val(k))
                flat.append(val(x))
            return ["D", flat]
        if t is tuple:
            return ["T", [val(x) for x in v]]
        if t is set:
            return ["S", [val(x) for x in v]]
        if t is frozenset:
            return ["F", [val(x) for x in v]]
        if t is deque:
            return ["Q", v.maxlen, [val(x) for x in v]]
        if t is Fraction:
            return ["R", val(v.numerator), val(v.denominator)]
        if not t.__module__.startswith("perpbox."):
            raise SnapshotError(f"cannot store a {t.__module__}.{t.__qualname__} (at {path})")
        if isinstance(v, enum.Enum):
            return ["E", self.shape(t, ()), val(v.value)]
        if isinstance(v, msgspec.Struct):
            names = t.__struct_fields__
            return ["M", self.shape(t, names), [val(getattr(v, n)) for n in names]]
        if hasattr(t, "snapshot_state"):
            return ["P", self.shape(t, ()), val(v.snapshot_state())]
        fast = self.fast.get(t)
        if fast is None:
            names, has_dict = _declared(t)
            fast = self.fast[t] = (None if has_dict or len(names) < 2 else
                                   (self.shape(t, names), operator.attrgetter(*names)))
        if fast is not None:  # every attribute in the class's declared order, in one call
            try:
                return ["O", fast[0], [val(x) for x in fast[1](v)]]
            except AttributeError:  # one is not set
                pass
        attrs = _attributes(v)
        return ["O", self.shape(t, tuple(n for n, _ in attrs)), [val(x) for _, x in attrs]]

    def run(self, root: Any) -> Any:
        top = self.value(root)
        while self.todo:
            idx, v = self.todo.pop()
            self.nodes[idx] = self.node(v, type(v).__qualname__)
        return top


def dump(root: Any, meta: dict[str, Any]) -> bytes:
    """Encode ``root`` (any graph of plain values and ``perpbox`` objects) with ``meta``."""
    w = _Writer()
    top = w.run(root)
    body = msgspec.msgpack.encode([meta, w.shapes, w.nodes, top])
    return MAGIC + str(FORMAT_VERSION).encode() + b"\n" + body


# ==================================================================================================
# reading
# ==================================================================================================
class _Ref:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


_UNSET_VALUE = _Unset()


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _REF:
        return _Ref(int.from_bytes(data, "big"))
    if code == _BIGINT:
        return int.from_bytes(data, "big", signed=True)
    if code == _UNSET:
        return _UNSET_VALUE
    raise SnapshotError(f"unknown msgpack extension {code}")


def header_version(body: bytes) -> int:
    """The format version a snapshot says it has (``SnapshotError`` if it is not one)."""
    if not body.startswith(MAGIC):
        kind = "a pickle (written before format 1)" if body[:1] == b"\x80" else "not a perpbox snapshot"
        raise SnapshotError(kind)
    end = body.find(b"\n", len(MAGIC), len(MAGIC) + 12)
    try:
        return int(body[len(MAGIC):end])
    except ValueError:
        raise SnapshotError("unreadable snapshot header") from None


class _Shape:
    """How to rebuild the objects of one (class, attribute names)."""

    __slots__ = ("cls", "direct", "frozen", "names", "required")

    def __init__(self, name: str, names: list[str]) -> None:
        cls = self.cls = _resolve(name)
        self.names = names
        is_dc = dataclasses.is_dataclass(cls)
        self.frozen = is_dc and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        # a dataclass whose constructor takes exactly these attributes, in this order: one call
        self.direct = (is_dc and not hasattr(cls, "__post_init__")
                       and [f.name for f in dataclasses.fields(cls) if f.init] == names
                       and all(f.init for f in dataclasses.fields(cls)))
        self.required: list[tuple[int, str]] | None = None

    def required_args(self) -> list[tuple[int, str]]:
        """(index in ``names``, parameter) of each constructor argument without a default."""
        if self.required is None:
            try:
                params = inspect.signature(self.cls).parameters.values()
            except (TypeError, ValueError):
                params = []  # type: ignore[assignment]
            pos = {n: i for i, n in enumerate(self.names)}
            req = []
            for p in params:
                if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if p.name not in pos:
                    raise SnapshotError(f"{_class_name(self.cls)}: constructor argument {p.name!r} is not an attribute")
                req.append((pos[p.name], p.name))
            self.required = req
        return self.required


# Modules whose classes moved after snapshots naming them were written (the package layout, issue 18):
# the class is the same, so such a snapshot still loads instead of forcing a replay of the whole log.
MOVED_MODULES = {
    "perpbox.api.readmodels": "perpbox.store.readmodels",
    "perpbox.api.nonces": "perpbox.store.nonces",
}


def _resolve(name: str) -> type:
    module, _, qual = name.partition(":")
    module = MOVED_MODULES.get(module, module)
    if not (module == "perpbox" or module.startswith("perpbox.")) or "<" in qual or not qual:
        raise SnapshotError(f"refusing to load class {name}")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise SnapshotError(f"class {name} no longer exists") from None
    if not isinstance(obj, type):
        raise SnapshotError(f"{name} is not a class")
    return obj


class _Reader:
    def __init__(self, shapes: list[Any], nodes: list[Any]) -> None:
        self.shape_specs = shapes
        self.shapes: list[_Shape | None] = [None] * len(shapes)
        self.nodes = nodes
        self.built: list[Any] = [_UNSET_VALUE] * len(nodes)
        self.building: set[int] = set()
        self.checked: set[int] = set()

    def shape(self, sid: int) -> _Shape:
        s = self.shapes[sid]
        if s is None:
            name, names = self.shape_specs[sid]
            s = self.shapes[sid] = _Shape(name, names)
        return s

    def val(self, v: Any) -> Any:
        return self.get(v.i) if type(v) is _Ref else v

    def get(self, i: int) -> Any:
        obj = self.built[i]
        if obj is not _UNSET_VALUE:
            return obj
        if i in self.building:
            raise SnapshotError("a cycle through an immutable value")
        node = self.nodes[i]
        tag = node[0]
        val = self.val
        if tag == "L":
            lst: list[Any] = []
            self.built[i] = lst
            lst.extend([val(x) for x in node[1]])
            return lst
        if tag == "D":
            d: dict[Any, Any] = {}
            self.built[i] = d
            flat = node[1]
            for j in range(0, len(flat), 2):
                k = val(flat[j])
                d[k] = val(flat[j + 1])
            return d
        if tag == "S":
            s: set[Any] = set()
            self.built[i] = s
            s.update([val(x) for x in node[1]])
            return s
        if tag == "Q":
            q: deque[Any] = deque(maxlen=node[1])
            self.built[i] = q
            q.extend([val(x) for x in node[2]])
            return q
        if tag == "O":
            return self.build_object(i, node)
        if tag == "P":
            cls = self.shape(node[1]).cls
            if not hasattr(cls, "restore"):
                raise SnapshotError(f"{_class_name(cls)} cannot restore a state")
            self.building.add(i)
            try:
                obj = cls.restore(val(node[2]))
            except ValueError as e:
                raise SnapshotError(f"{_class_name(cls)}: {e}") from None
            self.building.discard(i)
            self.built[i] = obj
            return obj
        self.building.add(i)
        if tag == "T":
            obj = tuple([val(x) for x in node[1]])
        elif tag == "F":
            obj = frozenset([val(x) for x in node[1]])
        elif tag == "R":
            obj = Fraction(val(node[1]), val(node[2]))
        elif tag == "E":
            cls = self.shape(node[1]).cls
            if not issubclass(cls, enum.Enum):
                raise SnapshotError(f"{_class_name(cls)} is not an enum")
            obj = cls(val(node[2]))
        elif tag == "M":
            sh = self.shape(node[1])
            if not issubclass(sh.cls, msgspec.Struct):
                raise SnapshotError(f"{_class_name(sh.cls)} is not a msgspec struct")
            obj = sh.cls(**{n: val(x) for n, x in zip(sh.names, node[2], strict=True)})
        else:
            raise SnapshotError(f"unknown node kind {tag!r}")
        self.building.discard(i)
        self.built[i] = obj
        return obj

    def build_object(self, i: int, node: list[Any]) -> Any:
        sid = node[1]
        sh = self.shape(sid)
        cls, names, values = sh.cls, sh.names, node[2]
        if issubclass(cls, (msgspec.Struct, enum.Enum)):
            raise SnapshotError(f"{_class_name(cls)} stored as a plain object")
        self.building.add(i)
        if sh.direct:
            args = [self.val(x) for x in values]
            if not any(a is _UNSET_VALUE for a in args):
                obj = cls(*args)
                self.building.discard(i)
                self.built[i] = obj
                return obj
        try:
            obj = cls(**{p: self.val(values[j]) for j, p in sh.required_args()})
        except SnapshotError:
            raise
        except Exception as e:
            raise SnapshotError(f"cannot rebuild {_class_name(cls)}: {type(e).__name__}: {e}") from None
        self.building.discard(i)
        self.built[i] = obj
        if sid not in self.checked:  # the class has grown an attribute this snapshot does not know
            self.checked.add(sid)
            missing = [n for n, _ in _attributes(obj) if n not in names]
            if missing:
                raise SnapshotError(f"{_class_name(cls)} has attributes the snapshot lacks: {', '.join(missing)}")
        setter: Callable[[Any, str, Any], None] = object.__setattr__ if sh.frozen else setattr
        for name, x in zip(names, values, strict=True):
            v = self.val(x)
            if v is _UNSET_VALUE:
                continue
            try:
                setter(obj, name, v)
            except (AttributeError, TypeError) as e:
                raise SnapshotError(f"cannot set {_class_name(cls)}.{name}: {e}") from None
        return obj


def load(body: bytes) -> tuple[Any, dict[str, Any]]:
    """Decode a snapshot: ``(root, meta)``; ``SnapshotError`` if it cannot be used."""
    version = header_version(body)
    if version != FORMAT_VERSION:
        raise SnapshotError(f"format version {version}; this build reads version {FORMAT_VERSION}")
    start = body.index(b"\n", len(MAGIC)) + 1
    try:
        meta, shapes, nodes, top = msgspec.msgpack.Decoder(ext_hook=_ext_hook).decode(memoryview(body)[start:])
    except (msgspec.DecodeError, ValueError, TypeError) as e:
        raise SnapshotError(f"undecodable: {e}") from None
    reader = _Reader(shapes, nodes)
    try:
        root = reader.val(top)
    except RecursionError:
        raise SnapshotError("nested too deeply") from None
    except SnapshotError:
        raise
    except Exception as e:
        raise SnapshotError(f"{type(e).__name__}: {e}") from None
    return root, meta
