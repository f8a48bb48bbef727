"""The chaos soak: the real stack under open-loop load while a seeded schedule kills, pauses,
restarts and freezes its parts; then every invariant is checked over the whole history.

``python -m tests.soak --seconds 600`` (the README's operating section); CI runs 60 seconds of it
(``tests/soak/test_soak.py``)."""
