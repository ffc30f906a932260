"""SQL as highlighted HTML (Pygments: a well-kept lexer beats a regex of our own)."""

from __future__ import annotations

import functools

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import SqlLexer

_LEXER, _FORMATTER = SqlLexer(), HtmlFormatter(nowrap=True)


@functools.lru_cache(maxsize=16)  # previews are cached too: the same long text comes back
def sql_html(sql: str) -> Markup:
    """Escaped by Pygments; spans with its short class names (styled in console.css)."""
    return Markup(highlight(sql, _LEXER, _FORMATTER))  # Pygments escapes the text
