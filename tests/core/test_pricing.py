"""The price table: its file's errors in one line, and the arithmetic of a call's cost."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlane.errors import ConfigError
from agentlane.pricing import DEV_PRICES, EMPTY, ModelPrice, PriceTable

TABLE = {
    "version": "2026-12-01",
    "models": {
        "m-1": {"inputPerMillion": 2.5, "cachedInputPerMillion": 1.25, "outputPerMillion": 10},
        "m-2": {"inputPerMillion": "0.15", "outputPerMillion": "0.6"},
    },
}


def test_a_call_costs_its_uncached_input_cached_input_and_output_at_their_prices() -> None:
    table = PriceTable.parse(json.dumps(TABLE))
    priced = table.price(
        {"model": "m-1", "inputTokens": 12, "cachedInputTokens": 3, "outputTokens": 7}
    )
    # 9 x 2.5 + 3 x 1.25 + 7 x 10 = 96.25 millionths of a dollar, rounded half up.
    assert priced["costMicros"] == 96 and priced["priceVersion"] == "2026-12-01"
    # Without a cached price, cached input costs the input price.
    assert table.price(
        {"model": "m-2", "inputTokens": 1_000_000, "cachedInputTokens": 400_000,
         "outputTokens": 10}
    )["costMicros"] == 150_000 + 6
    assert table.price({"model": "m-2", "inputTokens": 3})["costMicros"] == 0  # 0.45 rounds down


def test_an_unpriced_model_gets_no_cost() -> None:
    usage = {"model": "other", "inputTokens": 5, "outputTokens": 5}
    assert PriceTable.parse(json.dumps(TABLE)).price(usage) == usage
    assert EMPTY.price(usage) == usage


@given(
    st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7),
    st.integers(0, 10**7), st.integers(0, 10**7),
)
def test_cost_is_exact_and_never_charges_cached_tokens_twice(
    input_tokens: int, cached: int, output: int, input_price: int, output_price: int
) -> None:
    price = ModelPrice(Decimal(input_price) / 100, Decimal(output_price) / 100, Decimal(0))
    cost = price.cost_micros(input_tokens, output, cached)
    # Cached input is part of input and costs nothing here: more of it never costs more.
    uncached = input_tokens - min(cached, input_tokens)
    exact = (Decimal(uncached) * input_price + Decimal(output) * output_price) / 100
    assert abs(Decimal(cost) - exact) <= Decimal("0.5")
    assert cost <= price.cost_micros(input_tokens, output, 0)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "not JSON"),
        ('{"models": {}}', "version: Field required"),
        ('{"version": "v", "models": {"m": {"inputPerMillion": -1, "outputPerMillion": 1}}}',
         "models.m.inputPerMillion"),
        ('{"version": "v", "models": {"m": {"inputPerMillion": 1}}}',
         "models.m.outputPerMillion: Field required"),
        ('{"version": "v", "currency": "dollars", "models": {}}', "currency"),
        ('{"version": "v", "models": {}, "extra": 1}', "extra: Extra inputs"),
    ],
)
def test_a_bad_table_is_one_line_naming_the_field(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PriceTable.parse(text)
    assert error in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AGENTLANE_PRICES_FILE: cannot read"):
        PriceTable.load(tmp_path / "nope.json")
    assert PriceTable.load(None) is EMPTY


def test_the_dev_table_prices_the_offline_model() -> None:
    assert "offline" in PriceTable.load(DEV_PRICES).models
