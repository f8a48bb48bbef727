"""The shard function and the compact shard lists operators read in logs and tables."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentlane.sharding import compact_ranges, shard_for


def _expand(text: str) -> set[int]:
    numbers: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        numbers |= set(range(int(first), int(last or first) + 1))
    return numbers


@given(st.sets(st.integers(min_value=0, max_value=300)))
def test_compact_ranges_name_exactly_the_numbers_in_the_fewest_parts(numbers: set[int]) -> None:
    text = compact_ranges(numbers)
    assert _expand(text) == numbers
    # Fewest parts: one per maximal run of consecutive numbers.
    runs = sum(1 for n in numbers if n - 1 not in numbers)
    assert len(text.split(",")) == max(runs, 1) and (text != "") == bool(numbers)


def test_compact_ranges_reads_as_operators_expect() -> None:
    assert compact_ranges([5, 0, 1, 2, 7, 8, 2]) == "0-2,5,7-8"
    assert compact_ranges([]) == ""


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20),
       st.integers(min_value=1, max_value=4096))
def test_a_session_lands_on_one_shard_in_range(tenant: str, session: str, count: int) -> None:
    shard = shard_for(tenant, session, count)
    assert 0 <= shard < count and shard == shard_for(tenant, session, count)
