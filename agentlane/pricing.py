"""Model prices: a versioned table (``AGENTLANE_PRICES_FILE``) that turns a model call's usage
into money when the runner writes its ``Usage`` event.

The cost is written into the event (``costMicros``, in millionths of the table's currency, and
``priceVersion``), not computed when it is read: the log keeps what a call cost under the prices
of its day, a new table prices new calls only, and every read model, export and replay agrees.

The file is JSON::

    {"version": "2026-12-01", "currency": "USD",
     "models": {"gpt-4o-mini": {"inputPerMillion": 0.15, "cachedInputPerMillion": 0.075,
                                "outputPerMillion": 0.6}}}

Prices are per million tokens, so a token count times a price is already in micro-units.
``inputTokens`` includes ``cachedInputTokens`` (as the OpenAI API counts them): the cached part is
charged at its own price. A model the table does not name is unpriced: its ``Usage`` carries no
cost, and a budget in money cannot stop it (the runner warns once per model).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from agentlane.errors import ConfigError

logger = logging.getLogger(__name__)

class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class ModelPriceFile(_Wire):
    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)
    cached_input_per_million: Decimal | None = Field(default=None, ge=0)


class PriceFile(_Wire):
    version: str = Field(min_length=1, max_length=64)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    models: dict[str, ModelPriceFile]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Per million tokens; cached input at the input price unless the table says otherwise."""

    input: Decimal
    output: Decimal
    cached_input: Decimal

    def cost_micros(self, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> int:
        cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
        total = (
            (max(input_tokens, 0) - cached) * self.input
            + cached * self.cached_input
            + max(output_tokens, 0) * self.output
        )
        return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The prices in force: ``version`` names them in every ``Usage`` they price."""

    version: str
    currency: str = "USD"
    models: dict[str, ModelPrice] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> PriceTable:
        try:
            parsed = PriceFile.model_validate(json.loads(text))
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"price table: {_describe(exc)}") from None
        return cls(
            parsed.version,
            parsed.currency,
            {
                name: ModelPrice(
                    price.input_per_million,
                    price.output_per_million,
                    price.input_per_million
                    if price.cached_input_per_million is None
                    else price.cached_input_per_million,
                )
                for name, price in parsed.models.items()
            },
        )

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """The table in ``path``; with no path, an empty table (every model unpriced)."""
        if path is None:
            return EMPTY
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(
                f"AGENTLANE_PRICES_FILE: cannot read {path}: {exc.strerror}"
            ) from None
        return cls.parse(text)

    def price(self, usage: dict[str, Any]) -> dict[str, Any]:
        """``usage`` (a ``Usage`` event's data) with its cost, when its model has a price."""
        model = str(usage.get("model", ""))
        price = self.models.get(model)
        if price is None:
            if self.models and model not in self._warned:
                self._warned.add(model)
                logger.warning("model %s has no price in table %s: its calls are unpriced",
                               model, self.version)
            return usage
        cost = price.cost_micros(
            int(usage.get("inputTokens", 0)),
            int(usage.get("outputTokens", 0)),
            int(usage.get("cachedInputTokens", 0)),
        )
        return {**usage, "costMicros": cost, "priceVersion": self.version}


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        return f"{where}: {first['msg']}"
    return f"not JSON: {exc}"


#: No prices: every model is unpriced (no ``AGENTLANE_PRICES_FILE``).
EMPTY = PriceTable("none")

#: Where the made-up prices ``agentlane dev`` uses live (the offline model costs something there,
#: so the ledger has numbers to show).
DEV_PRICES = Path(__file__).parent / "prices" / "dev.json"
