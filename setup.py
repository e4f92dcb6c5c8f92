"""Build script beside pyproject.toml (which holds all metadata). It does two things pyproject.toml alone
cannot: the experiment configs live in ``configs/`` at the repository root and ship inside the package as
``cscnn/configs`` (one source, no copy), and the long description is the README with its relative links made
absolute, so that they work on the package index too."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def repository() -> str:
    """``Repository`` of ``[project.urls]`` in pyproject.toml (the one place that names it)."""
    m = re.search(r'^Repository\s*=\s*"([^"]+)"', (HERE / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    if not m:
        raise RuntimeError("pyproject.toml: [project.urls] has no Repository")
    return m.group(1).rstrip("/")


def long_description() -> str:
    """README.md with every relative link or image made absolute (files -> blob/main, images -> raw)."""
    text, base = (HERE / "README.md").read_text(encoding="utf-8"), repository()

    def absolute(m: re.Match) -> str:
        bang, label, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target):
            return m.group(0)
        kind = "raw" if bang else "blob"
        return f"{bang}[{label}]({base}/{kind}/main/{target})"

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", absolute, text)


setup(
    packages=[*find_packages("src"), "cscnn.configs"],
    package_dir={"": "src", "cscnn.configs": "configs"},
    long_description=long_description(),
    long_description_content_type="text/markdown",
)
