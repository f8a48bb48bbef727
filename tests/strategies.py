"""Hypothesis strategies shared by the suites that store or hash arbitrary event data."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Text Postgres can store (no NUL, no lone surrogates).
json_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)

#: Any JSON value, with integers beyond 64 bits and every finite float (jsonb's numeric edge cases).
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)
