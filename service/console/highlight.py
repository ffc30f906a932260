"""SQL as highlighted HTML (Pygments: a well-kept lexer beats a regex of our own)."""

from __future__ import annotations

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import SqlLexer

_LEXER, _FORMATTER = SqlLexer(), HtmlFormatter(nowrap=True)


def sql_html(sql: str) -> Markup:
    """Escaped by Pygments; spans with its short class names (styled in console.css)."""
    return Markup(highlight(sql, _LEXER, _FORMATTER))  # Pygments escapes the text
