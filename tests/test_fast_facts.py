"""The fast reading of a step's facts (`fast_facts`, Python's `ast`) against libcst's (`analyze_module`,
the reference): for every code here the fast reading gives the same `CodeFacts` or None ("ask libcst").

The corpus: every code cell of the notebooks under examples/ and tests/fixtures/ and of Kubeflow
Kale's examples (when they are beside the repository), each notebook's cells joined as one step
would be, generated benchmark notebooks, a list of tricky snippets (one per rule of libcst's scope
analysis that the fast reading replays or refuses) and programs hypothesis builds from a grammar
of the constructs the fast reading takes. The fast reading must also be taken, not just be right:
common code and nearly all generated cells must not fall back to libcst.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KALE_CASES, REPO
from kale_like.frontends import analysis
from kale_like.frontends.analysis import CodeSyntaxError, analyze_module, check, compiles
from kale_like.frontends.fast_facts import fast_facts
from kale_like.frontends.magics import strip_magics

pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")  # generated code subscripts constants

# (what it probes, code)
TRICKY = [
    # --- order of bindings and reads at module level
    ("a read before the binding reads from outside", "x = x + 1"),
    ("augmented assignment reads when not bound before", "total += 1"),
    ("augmented assignment after a binding does not read", "total = 0\ntotal += 1"),
    ("augmented assignment before a later binding reads", "total += 1\ntotal = 0"),
    ("augmented assignment of a builtin name is still a read", "len += 1"),
    ("augmented assignment in a def is local", "def f():\n    n += 1\n    return n"),
    ("augmented assignment in a class body reads the module's name", "class A:\n    n = 0\n    n += 1"),
    ("augmented assignment after a `global` binding in a def", "def f():\n    global n\n    n = 0\nn += 1"),
    ("augmented assignment after a decorated def of the name", "@dec\ndef n():\n    pass\nn += 1"),
    ("augmented assignment of an attribute reads and touches", "obj.count += 1\nitems[i] -= 2"),
    ("a def may use a name bound later in the cell", "def f():\n    return helper(x)\nhelper = len\nx = 1"),
    ("a def reading a name it binds later falls back to the module", "def f():\n    print(y)\n    y = 1"),
    ("the same, with the module binding y somewhere", "def f():\n    print(y)\n    y = 1\ny = 3"),
    ("chained assignment binds every target", "a = b = c = d + 1"),
    ("tuple targets bind and alias", "a, (b, *c) = d\nprint(a, b, c)"),
    ("starred target", "first, *rest = items\nprint(first, rest)"),
    ("annotation without a value binds for libcst", "x: int\ny: list[int] = []\nprint(x, y, z)"),
    ("annotated attribute target reads the object", "self.x: int = 1"),
    # --- del
    ("del of an unbound name reads it", "del a"),
    ("del of several names aliases them", "del a, b\nprint(a, b)"),
    ("del with a trailing comma is a tuple to libcst", "del a,\nprint(a)"),
    ("del of a parenthesised name is not a tuple", "del (a)\nprint(a)"),
    ("del of items touches", "del df['a'], cache[key]"),
    # --- comprehensions
    ("comprehension variables are local", "ys = [x * 2 for x in xs]\nprint(x)"),
    ("the first iterable is read outside", "[x for x in x]"),
    ("a second for does not see the first's target in its iterable? (it does)", "[y for x in a for y in x]"),
    ("a third for does not see the second's target (libcst)", "[z for x in a for y in x for z in y]"),
    ("a condition after a second for does not see its target (libcst)", "[x for x in a for y in b if y]"),
    ("dict and set comprehensions, generator expressions", "d = {k: v for k, v in pairs.items() if v}\ns = {w for w in words}\ng = sum(n for n in nums)"),
    ("nested comprehensions", "grid = [[cell for cell in row if cell] for row in rows]"),
    ("comprehension in a class body reads its first iterable in the class", "class A:\n    xs = [1]\n    ys = [x for x in xs]\n    zs = [xs for _ in range(2)]"),
    ("async comprehension in an async def", "async def f():\n    return [x async for x in aiter_of(s)]"),
    # --- walrus (refused: libcst binds it inside comprehensions)
    ("walrus at top level (refused)", "if (n := len(a)) > 10:\n    print(n)"),
    ("walrus in a comprehension (refused)", "[y := f(x) for x in a]\nprint(y)"),
    # --- functions, lambdas, defaults, decorators
    ("default arguments are evaluated outside", "def f(a=a, b=[c]):\n    return a + b"),
    ("a default naming the function itself", "def f(x=f):\n    return x"),
    ("decorators are evaluated outside, after the body", "@register(name)\ndef f():\n    return name2"),
    ("a decorator with the function's own name", "@f\ndef f():\n    pass"),
    ("keyword-only, positional-only, star args", "def f(a, /, b, *args, c=d, **kwargs):\n    return a, b, args, c, kwargs, e"),
    ("lambda parameters are local; defaults outside", "g = lambda x, y=z: x + y + w"),
    ("lambda inside a comprehension", "fs = [lambda: i for i in range(3)]"),
    ("closures and nonlocal", "def outer():\n    count = 0\n    def inner():\n        nonlocal count\n        count += 1\n        return count\n    return inner"),
    ("global in a def binds at module level", "def setup():\n    global config\n    config = load()\nprint(config)"),
    ("global read in a def", "def f():\n    global g\n    return g"),
    ("global statement at module level", "global x\nx = 1"),
    ("recursion", "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)"),
    ("async def with await and async with/for", "async def main():\n    async with lock:\n        async for item in stream:\n            await handle(item)"),
    ("generator function", "def gen():\n    yield from source\n    x = yield\n    return x"),
    # --- annotations
    ("parameter and return annotations are read outside", "def f(x: np.ndarray, y: 'pd.DataFrame' = None) -> Model:\n    return x"),
    ("string annotation with a name only", "def f(x: 'Foo') -> 'Bar':\n    pass"),
    ("string annotation that would bind (refused)", "x: 'import os' = 1"),
    ("string annotation with a walrus (refused)", "def f(x: '(y := 1)'):\n    pass"),
    ("typing subscript with a string", "from typing import Optional\nx: Optional['Foo'] = None\ny = Optional['Bar']"),
    ("typing.cast reads its arguments its way (refused)", "from typing import cast\ny = cast('int', x)"),
    ("TypeVar skips its first argument (refused)", "from typing import TypeVar\nT = TypeVar(name)"),
    ("f-string in an annotation (refused)", "def f(x: f'{a}'):\n    pass"),
    # --- classes
    ("class-level names are not visible in methods", "class A:\n    k = 1\n    def f(self):\n        return k"),
    ("a method binding later falls back to the class body (libcst)", "class A:\n    y = 1\n    def f(self):\n        print(y)\n        y = 2"),
    ("bases and keywords are read outside", "class A(Base, metaclass=Meta):\n    pass"),
    ("a class reading its own name as a base", "class A(A):\n    pass"),
    ("__class__ and super", "class A(B):\n    def f(self):\n        super().f()\n        return __class__"),
    ("nested classes do not see the outer class body", "class A:\n    x = 1\n    class B:\n        y = x"),
    ("a decorated class", "@dataclass\nclass Point:\n    x: float = 0.0\n    y: float = x"),
    # --- statements that bind
    ("for targets are bound before the iterable is read (libcst)", "for x in x:\n    pass"),
    ("for with else and a subscript target", "for a[i] in b:\n    pass\nelse:\n    done = True"),
    ("with-as binds; items in order", "with open(p) as f, wrap(f) as g:\n    data = g.read()"),
    ("parenthesised with items", "with (a, b):\n    pass\nwith (a, b) as c:\n    pass\nprint(a, b)"),
    ("try/except as, else, finally", "try:\n    r = risky()\nexcept (KeyError, ValueError) as e:\n    r = e\nelse:\n    ok = 1\nfinally:\n    close()"),
    ("except* groups", "try:\n    run()\nexcept* OSError as eg:\n    print(eg)"),
    ("while with else", "while n > 0:\n    n -= 1\nelse:\n    print(n)"),
    ("imports bind their top name or alias", "import os\nimport numpy as np\nfrom a.b import c as d, e\nprint(os, np, d, e)"),
    ("relative imports bind but name no module", "from . import sibling\nfrom .pkg import thing"),
    ("star import", "from math import *\nprint(sqrt(2))"),
    ("relative star import is not a star import to libcst", "from . import *"),
    ("a dotted import: the read of os.path is not a read of os", "import os.path\nos.path.join(a)"),
    ("a dotted import after the read: still no read (libcst)", "print(a.b)\nimport a.b"),
    ("a dotted import binds its top name", "import a.b.c\nprint(a, a.x, a.b.c.d, x.a.b)"),
    ("chains through a subscript, a call or an f-string", "import a.b\na.b[0].c\na.b().c\nf(a.b).c\nf'{a.b}'.upper\na[0].b.c"),
    ("a dotted import in a def or a class", "def f():\n    import a.b\n    return a.b.c\nclass A:\n    import c.d\n    x = c.d\n    def g(self):\n        return c.d\nprint(a.b, c.d)"),
    ("a dotted import and the plain name bound later", "print(os.path.x)\nimport os"),
    ("augmented assignment of a dotted import's top name", "import a.b\na += 1\na.b += 1\ndel a.b"),
    ("an import inside a def binds locally", "def f():\n    import json\n    return json\nprint(json)"),
    ("from __future__ binds the name", "from __future__ import annotations\nx = annotations"),
    ("match (refused)", "match cmd:\n    case [x, *rest]:\n        print(x, rest)\n    case {'k': v, **kw}:\n        print(v, kw)"),
    # --- in-place changes (touches)
    ("method calls touch their object", "model.fit(X, y)\ndf.loc[0, 'a'] = 1"),
    ("aliasing through a list, tuple, set or dict value", "pair = [a, b]\nt = (c,)\ns = {d}\nm = {'k': e, **f}"),
    ("a subscript with a bare tuple is not a tuple to libcst", "arr[i, j] = 1\nv = arr[k, l:m]"),
    ("a subscript with a parenthesised tuple is", "arr[(i, j)] = 1"),
    ("parentheses around the first element only", "x[(a), b]\ny[((c), d)]\nz[((e)), g]"),
    ("a subscript with a trailing comma", "x[a,]\ny[(b,)]"),
    ("starred elements alias", "y = [*a, b]\nprint(*c)"),
    ("touch through a list in a call", "[a.x, b].append(1)\n(c, d).count(1)"),
    ("assignment to a tuple of attributes", "a.x, b[0] = 1, 2"),
    # --- strings and positions
    ("f-strings read their expressions", "msg = f'{name!r:>{width}} {value:.3f} {obj.attr[key]}'"),
    ("multi-line and concatenated f-strings", "s = (f'{a}'\n     f'{b}' 'c' f\"\"\"\n{d}\"\"\")"),
    ("f-string with =", "print(f'{x=}')"),
    ("the first read's position wins", "print(a)\nprint(a, b)\nb = a"),
    ("non-ASCII text before a read counts characters", "s = 'héllo wörld'; t = x"),
    ("a non-ASCII name", "é = 1\ny = é + ü"),
    ("a name Python normalises (refused)", "\ufb01le = 1\nprint(\ufb01le)"),
    ("tabs count as one column", "if a:\n\tb = c"),
    ("line continuations", "x = 1 + \\\n    y"),
    ("Windows line ends (refused)", "x = 1\r\ny = x + z"),
    ("a form feed (refused)", "x = 1\n\x0cy = z"),
    ("docstrings and bytes", "'''doc'''\nb = b'bytes'\nprint(b)"),
    # --- builtins and notebook names
    ("builtins and notebook names are not reads", "print(len(x))\ndisplay(df)\nget_ipython()\n__name__"),
    ("module attributes of builtins", "print(__doc__, __spec__, __builtins__)"),
    ("rebinding a builtin", "list = [1]\nprint(list)"),
    # --- new syntax
    ("type alias statement (3.12: refused)", "type Alias = list[int]"),
    ("generic def (3.12: refused)", "def first[T](xs: list[T]) -> T:\n    return xs[0]"),
]

# Shapes notebooks are made of: the fast reading must take them all.
COMMON = [
    "import pandas as pd\nimport numpy as np\nfrom sklearn.model_selection import train_test_split",
    "df = pd.read_csv(path)\ndf.head()",
    "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)",
    "model = RandomForestClassifier(n_estimators=100)\nmodel.fit(X_train, y_train)\nscore = model.score(X_test, y_test)",
    "df['total'] = df['a'] + df['b']\ndf = df.dropna()\ndf.loc[df.x > 0, 'y'] = 1",
    "for i, row in enumerate(rows):\n    if row > threshold:\n        hits.append(i)\n    else:\n        continue",
    "with open(path) as f:\n    data = json.load(f)",
    "try:\n    value = compute()\nexcept Exception as error:\n    print(error)\n    value = None",
    "def clean(values, low=0):\n    \"\"\"Drop small values.\"\"\"\n    return [v for v in values if v > low]\n\ncleaned = clean(raw)",
    "squares = {n: n * n for n in range(10)}\nevens = [n for n in squares if n % 2 == 0]\ntotal = sum(v for v in squares.values())",
    "key = lambda item: item[1]\nranked = sorted(counts.items(), key=key, reverse=True)",
    "print(f'accuracy: {accuracy:.3f} on {len(X_test)} rows')",
    "arr = np.zeros((n, m))\narr[0, :] = 1\nmean = arr[:, 1:].mean(axis=0)",
    "class Config:\n    def __init__(self, size):\n        self.size = size\n\n    def double(self):\n        return self.size * 2\n\nconfig = Config(4)",
    "plt.figure(figsize=(8, 4))\nplt.plot(xs, ys, label='data')\nplt.legend()\nplt.show()",
    "while not done:\n    step += 1\n    done = step >= limit",
    "assert len(df) > 0, 'empty frame'\ndel tmp",
    "results = {}\nfor name, group in df.groupby('k'):\n    results[name] = group['v'].mean()",
    "def train(model, data, *, epochs: int = 10) -> float:\n    for epoch in range(epochs):\n        loss = model.step(data)\n    return loss",
]


def _reference(code: str):
    return analyze_module(check(code))


def _agrees(code: str):
    """The fast facts of `code` (None or libcst's own), compared; returns them. The walk in libcst's
    order is compared with libcst; the walk in Python's order (what a compile uses) must give the
    same facts unless the code has one of the two places where the orders differ."""
    fast = fast_facts(code, python_order=False)
    if fast is not None:
        assert fast == _reference(code), code
        if not _orders_differ(code):
            assert fast_facts(code) == fast, code
    return fast


def _orders_differ(code: str) -> bool:
    """Whether `code` has a `for` whose target names a name its iterable reads, a comprehension of
    several `for`s or an annotation without a value: where libcst differs from what Python runs
    (fast_facts.py)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.For, ast.AsyncFor)):
            targets = {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
            if targets & {n.id for n in ast.walk(node.iter) if isinstance(n, ast.Name)}:
                return True
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)) and len(node.generators) > 1:
            return True
        if isinstance(node, ast.AnnAssign) and node.value is None:
            return True
    return False


# Where Python's order and libcst's differ, the facts follow Python: (code, reads in Python's order,
# reads in libcst's order)
PYTHON_ORDER = [
    ("for x in x:\n    print(x)", {"x": (1, 10)}, {}),
    ("total = 0\nfor row in rows:\n    for row in row:\n        total += row",
     {"rows": (2, 12)}, {"rows": (2, 12)}),
    ("for a, b in zip(a, b):\n    pass", {"a": (1, 17), "b": (1, 20)}, {}),
    ("x = [1]\nfor x in x:\n    pass", {}, {}),
    ("[z for x in a for y in x for z in y]", {"a": (1, 13)}, {"a": (1, 13), "y": (1, 35)}),
    ("[x for x in a for y in b if y]", {"a": (1, 13), "b": (1, 24)}, {"a": (1, 13), "b": (1, 24), "y": (1, 29)}),
    ("{k: v for row in rows for k, v in row.items() if v}", {"rows": (1, 18)}, {"rows": (1, 18), "v": (1, 50)}),
    ("flat = sum(c for line in text for c in line if c)", {"text": (1, 26)}, {"c": (1, 48), "text": (1, 26)}),
    ("x: int\ny: list[int] = []\nprint(x, y, z)", {"x": (3, 7), "z": (3, 13)}, {"z": (3, 13)}),
    ("class A:\n    n: int\n    m = n", {"n": (3, 9)}, {}),
    ("def f():\n    n: int\n    return n", {}, {}),
]


@pytest.mark.parametrize(("code", "python", "libcst"), PYTHON_ORDER, ids=[c for c, _, _ in PYTHON_ORDER])
def test_reads_follow_pythons_order_where_libcsts_differs(code, python, libcst):
    assert _reference(code).reads == libcst  # what libcst says (the reason for the difference)
    assert fast_facts(code, python_order=False).reads == libcst
    assert fast_facts(code).reads == python
    assert analysis.analyze(code).reads == python  # what a compile uses


def test_an_annotation_without_a_value_defines_nothing():
    assert fast_facts("x: int\ny: list[int] = []").defines == {"y"}
    assert fast_facts("x: int", python_order=False).defines == _reference("x: int").defines == {"x"}


def test_a_notebook_flattening_with_nested_fors_runs_as_python_runs_it(tmp_path):
    """`x: list` and `for x in x:` take x from the step that made it, and a comprehension's third `for`
    may read the second's target: before, the first two failed with NameError and the third was
    refused."""
    import kale_like

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("a = [[[1, 2]], [[3]]]\nx = [1, 2, 3]", metadata={"tags": ["step:make"]}),
        nbformat.v4.new_code_cell("x: list\ntotal = 0\nfor x in x:\n    total += x\nflat = [z for w in a for y in w for z in y]",
                                  metadata={"tags": ["step:use"]}),
        nbformat.v4.new_code_cell("print(total, flat)", metadata={"tags": ["step:report"]}),
    ]
    path = tmp_path / "flatten.ipynb"
    nbformat.write(notebook, str(path))
    namespace: dict = {}
    exec("\n".join(cell.source for cell in notebook.cells[:2]), namespace)  # the same code run as plain Python
    result = kale_like.run(path, backend="thread", store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    made = (result.value("use", "total"), result.value("use", "flat"))
    assert made == (namespace["total"], namespace["flat"]) == (6, [1, 2, 3])


@pytest.mark.parametrize("code", [code for _, code in TRICKY], ids=[what for what, _ in TRICKY])
def test_a_tricky_snippet_gets_libcsts_facts_or_none(code):
    if not compiles(code):
        pytest.skip("not valid in this Python")
    _agrees(code)


def test_the_refusals_are_refused_and_the_rest_is_taken():
    refused = {what for what, _ in TRICKY if "(refused)" in what}
    for what, code in TRICKY:
        if not compiles(code):
            continue
        assert (fast_facts(code) is None) == (what in refused), what


@pytest.mark.parametrize("code", COMMON)
def test_common_code_takes_the_fast_path(code):
    assert _agrees(code) is not None


def _notebooks() -> list[Path]:
    found = sorted((REPO / "examples").glob("**/*.ipynb")) + sorted((REPO / "tests" / "fixtures").glob("**/*.ipynb"))
    if KALE_CASES.is_dir():
        found += sorted(KALE_CASES.glob("**/*.ipynb"))
    return found


def _codes(path: Path) -> list[str]:
    """The notebook's code cells as a step runs them (IPython lines out), and all of them joined."""
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception:  # the fixtures of unreadable notebooks
        return []
    cells = [strip_magics(cell.source).code for cell in notebook.cells if cell.cell_type == "code"]
    return [code for code in dict.fromkeys([*cells, "\n".join(cells)]) if compiles(code)]


@pytest.mark.parametrize("path", _notebooks(), ids=lambda path: path.name)
def test_every_notebook_cell_gets_libcsts_facts(path):
    for code in _codes(path):
        assert _agrees(code) is not None, code  # and every one of these takes the fast path


def _generated(n_cells: int, seed: int) -> list[str]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from make_notebooks import make_notebook
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    notebook, _ = make_notebook(n_cells, seed)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_notebook_cells_get_libcsts_facts(seed):
    cells = _generated(60, seed)
    for code in [*cells, "\n".join(cells[3:9])]:
        _agrees(code)


def test_the_fast_path_takes_nearly_every_generated_cell():
    cells = _generated(364, 2)
    taken = sum(fast_facts(code) is not None for code in cells)
    assert taken >= 0.95 * len(cells)


def test_code_that_does_not_analyse_gets_the_same_error_as_before():
    for code in ["def f(:\n    pass", "return 1", "nonlocal x", "x = 1\x00", "X = " + "[" * 150 + "]" * 150,
                 "x = (\n", "print 'a'"]:
        with pytest.raises(CodeSyntaxError) as expected:
            check(code)
        with pytest.raises(CodeSyntaxError) as got:
            analysis._analyzed(code)
        assert (got.value.message, got.value.line, got.value.column) == \
            (expected.value.message, expected.value.line, expected.value.column)


def test_analyze_gives_the_fast_facts_and_falls_back_to_libcst():
    common = "import json\nrows = [json.loads(line) for line in lines]\nrows.sort(key=len)"
    assert analysis._analyzed(common) == fast_facts(common) == _reference(common)
    refused = "[y := f(x) for x in a]\nprint(y)"
    assert fast_facts(refused) is None
    assert analysis._analyzed(refused) == _reference(refused)


# --- programs built from a grammar of the constructs the fast reading takes

NAMES = ["a", "b", "x", "y", "f", "df", "len", "os"]


@st.composite
def _expression(draw, depth: int = 0) -> str:
    name = st.sampled_from(NAMES)
    if depth > 2:
        return draw(st.one_of(name, st.sampled_from(["1", "'s'", "None"])))
    inner = _expression(depth + 1)
    kind = draw(st.integers(0, 18))
    if kind == 0:
        return f"({draw(inner)} + {draw(inner)})"
    if kind == 1:
        return f"{draw(name)}.{draw(name)}({draw(inner)})"
    if kind == 2:
        return f"{draw(inner)}[{draw(inner)}]"
    if kind == 3:
        return f"{draw(name)}[{draw(inner)}, {draw(inner)}]"
    if kind == 4:
        return f"[{draw(inner)}, {draw(inner)}]"
    if kind == 5:
        return f"({draw(inner)}, {draw(name)})"
    if kind == 6:
        return f"{{{draw(inner)}: {draw(name)}}}"
    if kind == 7:
        return f"[{draw(name)} for {draw(name)} in {draw(inner)} if {draw(inner)}]"
    if kind == 8:
        return f"[{draw(name)} for {draw(name)} in {draw(inner)} for {draw(name)} in {draw(inner)}]"
    if kind == 9:
        first, second = draw(st.lists(name, min_size=2, max_size=2, unique=True))
        return f"(lambda {first}, {second}={draw(inner)}: {draw(inner)})"
    if kind == 10:
        return f'f"{{{draw(name)}}} and {{{draw(name)}[{draw(name)}]!r:>{{{draw(name)}}}}}"'
    if kind == 11:
        return f"({draw(inner)} if {draw(inner)} else {draw(inner)})"
    if kind == 12:
        return f"{draw(name)}(*{draw(name)}, k={draw(inner)}, **{draw(name)})"
    if kind == 13:
        return f"{{{draw(name)} for {draw(name)} in {draw(name)}}}"
    if kind == 14:
        return f"[*{draw(name)}, {draw(inner)}]"
    if kind == 15:
        return f"{draw(name)}[({draw(name)}), {draw(name)}:{draw(inner)}]"
    if kind == 16:
        return f"{draw(name)}.{draw(name)}.x"
    return draw(name)


@st.composite
def _statements(draw, indent: str = "", depth: int = 0, in_def: bool = False) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        name, other, value = draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES)), draw(_expression())
        body = _statements(indent + "    ", depth + 1, in_def)
        def_body = _statements(indent + "    ", depth + 1, True)
        kind = draw(st.integers(0, 22 if depth < 2 else 11))
        if kind == 0:
            lines.append(f"{indent}{name} = {value}")
        elif kind == 1:
            lines.append(f"{indent}{name} += {value}")
        elif kind == 2:
            lines.append(f"{indent}{name}, {other} = {value}")
        elif kind == 3:
            lines.append(f"{indent}{name}.{other}[{value}] = {name}")
        elif kind == 4:
            lines.append(f"{indent}print({value})")
        elif kind == 5:
            lines.append(f"{indent}{name}: int = {value}")
        elif kind == 6:
            lines.append(f"{indent}{name}: {other}")
        elif kind == 7:
            lines.append(f"{indent}del {name}{draw(st.sampled_from(['', ',', f', {other}']))}")
        elif kind == 8:
            lines.append(indent + draw(st.sampled_from([f"import {name} as {other}", f"import {name}",
                                                         f"import {name}.{other}", f"import {name}.{other}.x"])))
        elif kind == 9:
            lines.append(f"{indent}from {name} import {other}")
        elif kind == 10:
            lines.append(f"{indent}global {name}" if in_def else f"{indent}{name}.{other}({value})")
        elif kind == 11:
            lines.append(f"{indent}return {value}" if in_def else f"{indent}pass")
        elif kind == 12:
            lines.append(f"{indent}for {name} in {value}:\n{draw(body)}")
        elif kind == 13:
            lines.append(f"{indent}if {value}:\n{draw(body)}\n{indent}else:\n{draw(body)}")
        elif kind == 14:
            lines.append(f"{indent}while {value}:\n{draw(body)}")
        elif kind == 15:
            lines.append(f"{indent}with {value} as {name}:\n{draw(body)}")
        elif kind == 16:
            lines.append(f"{indent}try:\n{draw(body)}\n{indent}except {other} as {name}:\n{draw(body)}")
        elif kind in (17, 18):
            decorator = f"{indent}@{other}\n" if draw(st.booleans()) else ""
            parameter = draw(st.sampled_from([n for n in NAMES if n != name]))
            lines.append(f"{decorator}{indent}def {name}({parameter}, k={draw(_expression())}):\n{draw(def_body)}")
        elif kind == 19:
            lines.append(f"{indent}class {name}({other}):\n{draw(body)}")
        elif kind == 20:
            lines.append(f"{indent}def {name}():\n{indent}    nonlocal_ = 1\n{indent}    def {other}():\n"
                         f"{indent}        nonlocal nonlocal_\n{indent}        nonlocal_ = {value}\n"
                         f"{indent}    return {other}")
        elif kind == 21:
            lines.append(f"{indent}{name} = [{other} for {other} in {value}]")
        else:
            lines.append(f"{indent}for {name}, {other} in {value}:\n{draw(body)}")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_statements())
def test_grammar_programs_get_libcsts_facts(code):
    if compiles(code):  # a few are not (`global x` after a use of x)
        assert _agrees(code) is not None, code
