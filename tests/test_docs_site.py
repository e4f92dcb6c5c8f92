"""The documentation site builds with warnings as errors, and its API reference covers every public name.

A broken link or anchor, a docstring the renderer cannot parse, a page missing from the navigation or a
renamed symbol fails the strict build; a name added to a package's ``__all__`` without reaching the
rendered reference fails the coverage check.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> its API page (docs/api/<page>.md -> <site>/api/<page>.html)
API_PAGES = {
    "cscnn": "cscnn",
    "cscnn.algebra": "algebra",
    "cscnn.nn": "nn",
    "cscnn.models": "models",
    "cscnn.data": "data",
    "cscnn.training": "training",
    "cscnn.testing": "testing",
    "cscnn.fields": "fields",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=300)
    warnings = [line for line in r.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert r.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or r.stderr.splitlines()[-30:])
    return out


def test_every_public_name_has_an_api_entry(site):
    missing = []
    for package, page in API_PAGES.items():
        html = (site / "api" / f"{page}.html").read_text()
        module = importlib.import_module(package)
        for name in module.__all__:
            # under the package's name, or under its defining module's where a submodule has the same name
            defined_in = getattr(getattr(module, name), "__module__", None)
            ids = {f'id="{package}.{name}"', f'id="{defined_in}.{name}"'}
            if not any(i in html for i in ids):
                missing.append(f"{package}.{name}")
    assert not missing, f"names in __all__ without an entry in the API reference: {missing}"


def test_lazily_imported_names_render_with_their_docstrings(site):
    """cscnn.training imports its names on first use; the reference still shows their signatures and text."""
    html = (site / "api" / "training.html").read_text()
    from cscnn.training import train

    first_line = train.__doc__.strip().splitlines()[0]
    assert first_line.split()[0] in html and 'id="cscnn.training.train"' in html
    assert 'id="cscnn.CliffordAlgebra.geometric_product"' in (site / "api" / "cscnn.html").read_text()


def test_every_package_has_a_page_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in API_PAGES.values():
        assert f"api/{page}.md" in nav and (ROOT / "docs" / "api" / f"{page}.md").exists()


def test_sphinx_roles_in_docstrings_render_as_code(site):
    """CSUNet's docstring says (:class:`~cscnn.models.CSResidualBlock`); the page shows the name as code."""
    html = (site / "api" / "models.html").read_text()
    assert "(<code>CSResidualBlock</code>)" in html
    unet_text = html.split('id="cscnn.models.CSUNet"')[1].split("Source code")[0]
    assert "(<code>CSResidualBlock</code>)" in unet_text and ":class:`" not in unet_text


#: how the work was organised, which product text (README, docs, src, benchmarks) does not speak of
PROCESS_WORDS = re.compile(r"\b[Ii]ssues? #?[0-9]+|\b[Ii]ssue-[0-9]+|\b[Ss]essions?\b|\bSPEC(\.md)?\b"
                           r"|\b[0-2][0-9]:[0-5][0-9](-[0-2][0-9]:[0-5][0-9])? UTC\b|\bcommit [0-9a-f]{7,40}\b")


def test_product_text_has_no_process_words():
    """No issue numbers, sessions, references to an internal SPEC, clock times or commit hashes in what users
    read (the archived per-cell JSON of the studies is data, not text). A commit of another project, named
    with its repository just before, pins the version of that code and is allowed."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py"),
             *(ROOT / "benchmarks").rglob("*.py")]
    hits = []
    for path in files:
        if "_cells" in path.parts[-2]:
            continue
        text = path.read_text()
        for m in PROCESS_WORDS.finditer(text):
            if m.group().startswith("commit") and "github.com/" in text[max(0, m.start() - 200):m.start()]:
                continue
            line = text.count("\n", 0, m.start()) + 1
            hits.append(f"{path.relative_to(ROOT)}:{line}: {text.splitlines()[line - 1].strip()[:100]}")
    assert not hits, "process words in product text:\n" + "\n".join(hits)
