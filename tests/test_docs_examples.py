"""Every ```python block of README.md and of the documentation site's pages (docs/**/*.md) runs as written.

The blocks of one file run in order in one fresh interpreter, in a scratch folder holding a copy of
``configs/`` and ``tests/fixtures/``, within :data:`TIMEOUT` seconds. Statement by statement, so that shape
comments are checked too: a statement whose first line ends in a comment that starts with a tuple, such as

    y = net(x)                  # (8, 1, 64, 64, 4)
    w = conv.weight.shape       # (64, 16, 5, 5, 5): ...
    x, y = ds[0]                # x (4, 64, 64, 4), y (1, 64, 64, 4)

must produce that shape (integers are compared, names such as ``B`` or ``2**dim`` only count as an
axis); a nested tuple literal (``# ((), (0,), ...)``) is compared with the value, and so is a leading
integer (``n = count_parameters(net)  # 7202561``) when the value is an int. A block whose first
line is a comment containing "not run" (for GPU-sized code, at most one block in four per file) is
compiled but skipped; the same code must then be exercised at a small width in another block.

The fast suite runs every file whose examples are cheap (:data:`SLOW_FILES` lists the others, run with
``-m slow``) and compiles every block of every file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT = 300  # seconds per file, on 2 cores
#: files whose examples take long (generating data with several simulators): `-m slow`
SLOW_FILES = {"docs/data.md"}


def doc_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block of a Markdown file."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def not_run(code: str) -> bool:
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    return first.startswith("#") and "not run" in first.lower()


# The driver runs in the scratch folder; it gets the blocks as JSON on stdin.
_DRIVER = r'''
import ast, json, re, sys, time
import io, tokenize

def comment_of(line):
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(line + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    for t in toks:
        if t.type == tokenize.COMMENT:
            return t.string[1:].strip()
    return None

def leading_paren(text):
    if not text.startswith("("):
        return None
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if depth == 0:
            return text[: i + 1]
    return None

def flat_axes(paren):
    inner = paren[1:-1]
    if "(" in inner:
        return None
    parts = [p.strip() for p in inner.split(",") if p.strip()]
    return [int(p) if re.fullmatch(r"-?\d+", p) else None for p in parts]

def shape_of(v):
    s = getattr(v, "shape", None)
    if s is not None and not callable(s):
        return tuple(int(d) for d in s)
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return v
    return None

def matches(shape, axes):
    return shape is not None and len(shape) == len(axes) and all(a is None or a == d for a, d in zip(axes, shape))

def check_comment(comment, value, ns, where):
    num = re.match(r"(-?\d+)(?![\w.])", comment)
    if num and isinstance(value, int) and not isinstance(value, bool):
        if value != int(num.group(1)):
            raise AssertionError(f"{where}: comment says {num.group(1)}, value is {value}")
        return
    paren = leading_paren(comment)
    if paren is not None:
        if paren.startswith("(("):
            try:
                lit = ast.literal_eval(paren)
            except (ValueError, SyntaxError):
                return
            if value != lit:
                raise AssertionError(f"{where}: comment says {paren}, value is {value!r}")
            return
        axes = flat_axes(paren)
        shape = shape_of(value)
        if axes is None or shape is None:
            return
        if not matches(shape, axes):
            raise AssertionError(f"{where}: comment says shape {paren}, got {shape}")
        return
    for name, paren in re.findall(r"(?:^|,\s*)([A-Za-z_]\w*) (\([^()]*\))", comment):
        if name in ns and shape_of(ns[name]) is not None:
            axes = flat_axes(paren)
            if axes is not None and not matches(shape_of(ns[name]), axes):
                raise AssertionError(f"{where}: comment says {name} {paren}, got {shape_of(ns[name])}")

def value_of(stmt, ns):
    if isinstance(stmt, ast.Expr):
        return True, ns.pop("__value__", None)
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            return True, ns.get(targets[0].id)
    return False, None

blocks = json.load(sys.stdin)
ns, page = {}, None
for i, (doc, line0, code, skip) in enumerate(blocks):
    if doc != page:  # each page runs in a namespace of its own
        ns, page = {"__name__": "__main__"}, doc
    tree = ast.parse(code, f"{doc}:{line0}")
    if skip:
        print(f"block {i + 1} ({doc} line {line0}): not run", flush=True)
        continue
    t0 = time.time()
    lines = code.splitlines()
    for stmt in tree.body:
        where = f"{doc} line {line0 + stmt.lineno - 1}"
        if isinstance(stmt, ast.Expr):
            node = ast.Module([ast.Assign([ast.Name("__value__", ast.Store())], stmt.value)], [])
            node = ast.fix_missing_locations(ast.increment_lineno(node, 0))
            ast.copy_location(node.body[0], stmt)
        else:
            node = ast.Module([stmt], [])
        try:
            exec(compile(node, f"{doc}:{line0}", "exec"), ns)
        except Exception as e:
            print(f"FAILED at {where}: {lines[stmt.lineno - 1].strip()}", flush=True)
            raise
        comment = comment_of(lines[stmt.lineno - 1])
        has, value = value_of(stmt, ns)
        if comment and has:
            check_comment(comment, value, ns, where)
    print(f"block {i + 1} ({doc} line {line0}): ok in {time.time() - t0:.1f} s", flush=True)
'''


def run_doc(path: Path | list[Path], tmp_path: Path) -> str:
    """Run the blocks of one page, or of several pages one after the other in one interpreter (each page
    in a namespace of its own), in ``tmp_path``."""
    paths = path if isinstance(path, list) else [path]
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "tests" / "fixtures", tmp_path / "tests" / "fixtures")  # small files examples read
    payload = json.dumps([(doc_id(p) if p.is_relative_to(ROOT) else p.name, line, code, not_run(code))
                          for p in paths for line, code in python_blocks(p)])
    what = ", ".join(p.name for p in paths)
    timeout = TIMEOUT * len(paths)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}
    try:
        r = subprocess.run([sys.executable, "-c", _DRIVER], input=payload, cwd=tmp_path, capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{what}: the examples did not finish within {timeout} s; so far:\n{out}")
    assert r.returncode == 0, f"{what}:\n{r.stdout[-3000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def test_every_block_compiles_and_few_are_skipped():
    for path in DOC_FILES:
        blocks = python_blocks(path)
        for line, code in blocks:
            compile(code, f"{path.name}:{line}", "exec")  # SyntaxError names the file and block
        skipped = sum(not_run(code) for _, code in blocks)
        assert 4 * skipped <= len(blocks), f"{path.name}: {skipped} of {len(blocks)} blocks are 'not run'"


def test_the_driver_checks_shape_comments(tmp_path):
    doc = tmp_path / "docs" / "bad.md"
    doc.parent.mkdir()
    (tmp_path / "configs").mkdir()
    doc.write_text("```python\nimport torch\nx = torch.zeros(2, 3)   # (2, 4)\n```\n")
    with pytest.raises(AssertionError, match=r"bad.md line 3: comment says shape \(2, 4\), got \(2, 3\)"):
        run_doc(doc, tmp_path / "run1")
    doc.write_text("```python\nn = 7  # 8 of them\n```\n")
    with pytest.raises(AssertionError, match="comment says 8, value is 7"):
        run_doc(doc, tmp_path / "run2")
    doc.write_text("```python\nimport torch\nx = torch.zeros(2, 3)   # (B, 3): fine\nx.shape  # x (2, 3)\n"
                   "n = 7  # 7\nm = 7  # 4 -> 1 steps is prose, not checked against an int? it is: 4 != 7\n```\n")
    with pytest.raises(AssertionError, match="comment says 4, value is 7"):
        run_doc(doc, tmp_path / "run3")
    doc.write_text("```python\nimport torch\nx = torch.zeros(2, 3)   # (B, 3): fine\nx.shape  # x (2, 3)\n"
                   "n = 7  # 7\n```\n")
    assert "ok" in run_doc(doc, tmp_path / "run4")


#: pages whose examples run together in one interpreter (one torch import for all; each in its own namespace)
GROUPS = {"docs/guides": sorted(p for p in DOC_FILES if doc_id(p).startswith("docs/guides/") and python_blocks(p))}
_SINGLE = [doc_id(p) for p in DOC_FILES if doc_id(p) not in SLOW_FILES and python_blocks(p)
           and not any(p in group for group in GROUPS.values())]


@pytest.mark.parametrize("name", [*_SINGLE, *GROUPS])
def test_doc_examples_run(name, tmp_path):
    print(run_doc(GROUPS.get(name, ROOT / name), tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_FILES))
def test_doc_examples_run_slow(name, tmp_path):
    print(run_doc(ROOT / name, tmp_path))


def test_pages_run_together_keep_their_own_namespaces(tmp_path):
    first, second = tmp_path / "docs" / "a.md", tmp_path / "docs" / "b.md"
    first.parent.mkdir()
    first.write_text("```python\nshared = 1\n```\n")
    second.write_text("```python\nprint(shared)\n```\n")
    with pytest.raises(AssertionError, match="NameError: name 'shared' is not defined"):
        run_doc([first, second], tmp_path / "run")
