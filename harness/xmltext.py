"""Text that reaches XML or HTML: characters XML 1.0 cannot hold (C0 controls but tab and
line breaks, lone surrogates, U+FFFE, U+FFFF) made visible as ``\\xNN`` / ``\\uNNNN``.

Names and values a user writes are refused at input when they hold such characters
(``harness.yamlsrc``); this is for evidence, what a guest printed (kernel messages,
signature titles), which is kept, not refused: a report must stay well-formed XML whatever
the guest wrote (issue 14). Pure functions.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

_NOT_XML = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ud800-\\udfff\\ufffe\\uffff]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_safe(text: str) -> str:
    """``text`` with every character XML cannot hold written as a visible escape."""
    return _NOT_XML.sub(_visible, text) if _NOT_XML.search(text) else text


def sanitize_tree(root: ET.Element) -> ET.Element:
    """Every text, tail, attribute name and value of ``root``'s tree made XML-safe."""
    for el in root.iter():
        if el.text:
            el.text = xml_safe(el.text)
        if el.tail:
            el.tail = xml_safe(el.tail)
        if el.attrib:
            el.attrib = {xml_safe(k): xml_safe(v) for k, v in el.attrib.items()}
    return root


def finalize(value: Any) -> Any:
    """A Jinja2 ``finalize``: every printed string made XML-safe (Markup stays Markup)."""
    if isinstance(value, str):
        safe = xml_safe(value)
        if safe is not value and hasattr(value, "__html__"):
            return type(value)(safe)
        return safe
    return value
