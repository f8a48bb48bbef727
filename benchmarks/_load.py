"""The load average, printed beside a benchmark's figures: a figure taken on a busy machine
says so, and two figures are only compared at similar loads."""

from __future__ import annotations

import os


def load_average() -> str:
    """``load 1.23 / 0.98 / 0.75`` (1, 5 and 15 minutes)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} / {five:.2f} / {fifteen:.2f}"
