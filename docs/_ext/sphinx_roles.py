"""Griffe extension for the API reference: Sphinx roles in docstrings (:func:`~cscnn.x.f`) become code.

The docstrings use reStructuredText roles, which help() and IDEs show as they are; mkdocstrings reads
Markdown, so ``:class:`~cscnn.nn.MVLinear``` becomes ```MVLinear``` (a leading ``~`` keeps the last name).
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
