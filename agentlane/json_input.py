"""JSON sent by clients (HTTP bodies, WebSocket frames), parsed with the checks both doors share.

Refused, each with one message: text that is not JSON (NaN and Infinity included: they are not
JSON and jsonb cannot hold them); nesting too deep for the parser (a ``RecursionError`` escaped
before and dropped the socket); and strings holding a lone surrogate (``"\\ud800"``: valid JSON
syntax, but not Unicode text, so no UTF-8 encoder, PostgreSQL's included, can write it). Numbers
keep Python's exact integers, which is why the standard parser stays.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentlane.events import is_text

#: A ``\\uXXXX`` escape in the surrogate range: the only way a lone surrogate gets into a string
#: (strict UTF-8 decoding refuses raw ones), so documents without one skip the walk below.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class ClientJsonError(ValueError):
    """Client JSON refused; ``not_text`` when it parsed but holds a lone surrogate."""

    def __init__(self, message: str, *, not_text: bool = False) -> None:
        super().__init__(message)
        self.not_text = not_text


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def loads_client_json(text: str | bytes, *, where: str = "body") -> Any:
    """The document ``text`` holds, or ClientJsonError saying what is wrong (and, for a lone
    surrogate, where: ``body.payload.note``)."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ClientJsonError("not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClientJsonError(f"not valid JSON: {exc}") from None
    raw = text.decode() if isinstance(text, bytes) else text
    if _SURROGATE_ESCAPE.search(raw):
        path = _lone_surrogate(document, where)
        if path is not None:
            raise ClientJsonError(f"{path}: a lone surrogate is not Unicode text", not_text=True)
    return document


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a lone surrogate, if any."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if not is_text(key):
                    return f"{where} (a key)"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{index}") for index, child in enumerate(item))
    return None
