"""The one way text from a file or the network becomes printable: control characters (C0 with
ESC and BEL, DEL, C1) and the bidi controls that reorder a line are shown as escapes (`\\x1b`,
`\\u202e`), so a workflow, a model name, a folder name or a server's answer cannot move the
cursor, recolour, retitle or reorder the terminal. Other Unicode (accents, CJK, emoji) is kept."""

from __future__ import annotations

_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]


def _escaped(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escaped(code) for code in _CONTROLS + _BIDI}
_TABLE_KEEPING_LINES = {code: text for code, text in _TABLE.items() if code not in (0x0A, 0x09)}


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with every control character escaped; newlines and tabs kept only when asked (a
    name never has one: a newline in it could forge a line of output)."""
    text = str(text)
    return text.translate(_TABLE_KEEPING_LINES if keep_newlines else _TABLE)


def escape(text: object) -> str:
    """Untrusted text for a rich markup string: printable, and its brackets not read as markup."""
    from rich.markup import escape as markup_escape

    return markup_escape(printable(text, keep_newlines=True))
