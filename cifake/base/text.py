"""Text that cifake prints or writes from names it did not choose: file names, error messages, CSV cells."""

from __future__ import annotations

import re


def printable(path: str) -> str:
    """A file name safe to print or write to a UTF-8 CSV: undecodable bytes shown as ``\\xNN``.

    Python gives names that are not valid UTF-8 as lone surrogates (PEP 383); printing those to
    stdout or a UTF-8 file raises, which once crashed whole commands over one odd file name.
    Control characters (newline, carriage return, tab, ...) are shown as ``\\xNN`` too.
    """
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)  # a newline in a name must not split a table row


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def csv_cell(value):
    """``value`` safe for a spreadsheet: text starting with = + - @ (or a tab / CR) gets a leading ' so
    that Excel, LibreOffice and Sheets show it as text instead of running it (OWASP: CSV injection).
    Numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_path(path: str) -> str:
    """A file name as every CSV cifake writes holds it: printable, and never read as a formula."""
    return csv_cell(printable(path))


def shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, with an ellipsis when cut."""
    if len(text) <= width:
        return text
    return text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
