"""MkDocs hook: the generated parts of the documentation, made at build time from the code that owns them.

``<!-- generated: params reference -->`` on a page becomes the params table that ``python -m rlvr.config`` prints,
from each field's description; command outputs are files under ``docs/results/`` that pages include as snippets.
"""

from __future__ import annotations

GENERATED = "<!-- generated: params reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Put the params reference where a page asks for it."""
    if GENERATED not in markdown:
        return markdown
    from rlvr.config import reference_table

    return markdown.replace(GENERATED, reference_table())
