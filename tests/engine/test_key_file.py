"""The model key read from a mounted file: read again when it changes, and a missing or empty
file is a retryable failure (a Secret being swapped in, or not mounted yet), never a failed run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runners.agent.model import KeyFile
from runners.engine import RetryLater


def test_the_key_is_read_again_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("sk-one\n")
    keys = KeyFile(path)
    assert keys.read() == "sk-one"
    staged = tmp_path / "key.new"
    staged.write_text("sk-two\n")
    os.replace(staged, path)  # how the kubelet swaps a Secret's files
    assert keys.read() == "sk-two"


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_a_missing_or_empty_key_file_is_retried_later(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RetryLater, match="cannot read the model key"):
        KeyFile(path).read()
