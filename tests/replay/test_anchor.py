"""Anchors (``agentlane replay anchor`` / ``verify --anchor``) as real processes against the real
Postgres: a superuser who rewrites an event and recomputes the chain passes ``verify`` but not
``verify --anchor``, which names the stream; what was appended after the anchor is fine; a removed
stream is named; an anchor that was edited, or signed by another key, is refused in one line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agentlane.commands import Commands
from agentlane.db import with_session_options
from agentlane.replay import anchor
from agentlane.replay.errors import AnchorError
from tests.replay.conftest import Seeded, event_id_of, replay, rewrite_history, tamper, write_run


def ed25519_pair(directory: Path, name: str = "anchor") -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def take_anchor(database_url: str, key: Path, out: Path) -> None:
    # The auditor role is all an anchor needs.
    as_auditor = with_session_options(database_url, role="agentlane_auditor")
    result = replay(as_auditor, "anchor", "--key-file", str(key), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"anchored 3 streams, 37 events through event \d+ to {re.escape(str(out))} "
        r"\(key ed25519:[0-9a-f]{16}\)\n",
        result.stderr,
    ), result.stderr


async def test_a_rewrite_with_a_recomputed_chain_passes_verify_but_not_the_anchor(
    database_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    private, public = ed25519_pair(tmp_path)
    taken = tmp_path / "anchor.ndjson"
    take_anchor(database_url, private, taken)
    verified = replay(database_url, "verify", "--anchor", str(taken), "--anchor-key", str(public))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 streams checked" in verified.stdout

    # default/s1 seq 3 is a token of run r1; the head of the stream is seq 16.
    rewrite_history(database_url, "default", "s1", 3, {"text": "forged ", "index": 0})
    plain = replay(database_url, "verify")
    assert plain.returncode == 0, plain.stdout  # the chain alone cannot see it: the point

    caught = replay(database_url, "verify", "--anchor", str(taken), "--anchor-key", str(public))
    assert caught.returncode == 1, caught.stdout + caught.stderr
    head = event_id_of(database_url, "default", "s1", 16)
    mismatches = [line for line in caught.stdout.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 1, caught.stdout
    assert mismatches[0].startswith(
        f"MISMATCH default/s1 seq 16 event {head}: history before the anchor of "
    )
    assert "changed: the chain hash at seq 16 is" in mismatches[0]
    assert caught.stdout.splitlines()[-1].startswith("1 MISMATCHES: 37 events")

    as_json = replay(
        database_url, "verify", "--json", "--tenant", "default", "--anchor", str(taken),
        "--anchor-key", str(public),
    )
    found = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(m["sessionId"], m["seq"]) for m in found if "mismatch" in m] == [("s1", 16)]
    assert found[-1]["ok"] is False


async def test_history_appended_after_the_anchor_is_not_a_mismatch(
    database_url: str, seeded: Seeded, commands: Commands, tmp_path: Path
) -> None:
    private, public = ed25519_pair(tmp_path)
    taken = tmp_path / "anchor.ndjson"
    take_anchor(database_url, private, taken)
    await write_run(commands, "default", "s1", "r5")
    await write_run(commands, "acme", "s2", "r6")
    result = replay(database_url, "verify", "--anchor", str(taken), "--anchor-key", str(public))
    assert result.returncode == 0, result.stdout
    # An HMAC-signed anchor, key from the environment, checks the same way.
    secret = "s" * 40
    hmac_anchor = tmp_path / "hmac.ndjson"
    env = {"AGENTLANE_ANCHOR_KEY": secret}
    assert replay(database_url, "anchor", "--out", str(hmac_anchor), extra_env=env).returncode == 0
    result = replay(database_url, "verify", "--anchor", str(hmac_anchor), extra_env=env)
    assert result.returncode == 0 and "4 streams checked" in result.stdout, result.stdout


async def test_a_removed_stream_and_a_renumbered_event_are_named(
    database_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    private, public = ed25519_pair(tmp_path)
    taken = tmp_path / "anchor.ndjson"
    take_anchor(database_url, private, taken)
    last = event_id_of(database_url, "default", "s2", 13)
    tamper(database_url, [
        "DELETE FROM agent_events WHERE tenant_id = 'acme'",
        "DELETE FROM agent_stream_heads WHERE tenant_id = 'acme'",
        f"UPDATE agent_events SET event_id = {last + 1000} WHERE event_id = {last}",
    ])
    result = replay(database_url, "verify", "--anchor", str(taken), "--anchor-key", str(public))
    assert result.returncode == 1
    assert "MISMATCH acme/s1 seq 8 event" in result.stdout
    assert "was removed: seq 8 is gone" in result.stdout
    assert (
        f"MISMATCH default/s2 seq 13 event {last + 1000}: history before the anchor of"
        in result.stdout
    )
    assert f"renumbered: seq 13 is event {last + 1000}, the anchor says {last}" in result.stdout


async def test_an_edited_or_foreign_anchor_is_refused_in_one_line(
    database_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    private, public = ed25519_pair(tmp_path)
    _, other_public = ed25519_pair(tmp_path, "other")
    taken = tmp_path / "anchor.ndjson"
    take_anchor(database_url, private, taken)

    def refused(*args: str, **env: str) -> str:
        result = replay(database_url, "verify", *args, extra_env=env)
        assert result.returncode == 1 and result.stdout == "", result.stdout
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        return result.stderr

    assert "signed by key 'ed25519:" in refused(
        "--anchor", str(taken), "--anchor-key", str(other_public)
    )
    assert "no anchor verify key" in refused("--anchor", str(taken))
    lines = taken.read_text().splitlines()
    edited = tmp_path / "edited.ndjson"
    edited.write_text("\n".join([lines[0], lines[1].replace('"s1"', '"s9"'), *lines[2:]]) + "\n")
    assert "the stream heads were changed after signing" in refused(
        "--anchor", str(edited), "--anchor-key", str(public)
    )
    assert "No such file" in refused(
        "--anchor", str(tmp_path / "missing"), "--anchor-key", str(public)
    )
    short = replay(database_url, "anchor", extra_env={"AGENTLANE_ANCHOR_KEY": "short"})
    assert short.returncode == 1 and "at least 32 bytes" in short.stderr
    assert short.stdout == ""
    # A failed write leaves nothing behind.
    blocked = tmp_path / "no-such-dir" / "anchor.ndjson"
    failed = replay(database_url, "anchor", "--key-file", str(private), "--out", str(blocked))
    assert failed.returncode == 1 and "cannot write" in failed.stderr
    assert not blocked.parent.exists()


_HEADS = st.lists(
    st.builds(
        anchor.Head,
        st.text(min_size=1, max_size=8),
        st.text(min_size=1, max_size=8),
        st.integers(1, 2**40),
        st.integers(1, 2**62),
        st.binary(min_size=32, max_size=32),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(heads=_HEADS, flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_changed_byte_of_an_anchor_is_refused(
    heads: list[anchor.Head], flip: int, bit: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = anchor.HmacKey(b"k" * 32)
    content = anchor.render(heads, 10, 99, key, datetime.now(UTC))
    path = tmp_path_factory.mktemp("anchor") / "a.ndjson"
    path.write_bytes(content)
    loaded = anchor.load(path, key)
    assert loaded.heads == heads and loaded.events == 10 and loaded.through_event_id == 99
    changed = bytearray(content)
    changed[flip % len(changed)] ^= 1 << bit
    path.write_bytes(bytes(changed))
    try:
        anchor.load(path, key)
    except AnchorError:
        return
    raise AssertionError("a changed anchor was accepted")


async def test_an_anchor_goes_to_a_bucket_and_verifies_from_there(
    database_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    """The CronJob's path: ``--out gs://…`` creates a new object (here in Google's storage
    emulator), and that object is the anchor ``verify`` checks."""
    from gcp_storage_emulator.server import create_server

    from agentlane.cli.embedded_pg import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="anchors")
    server.start()
    try:
        private, public = ed25519_pair(tmp_path)
        env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
        result = replay(
            database_url, "anchor", "--key-file", str(private), "--out", "gs://anchors/prod",
            extra_env=env,
        )
        assert result.returncode == 0, result.stderr
        written = re.search(r" to gs://anchors/(prod/\d{4}/\d\d/\d\d/anchor-\S+\.ndjson) ",
                            result.stderr)
        assert written is not None, result.stderr
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            listing = (
                await client.get("/storage/v1/b/anchors/o", params={"prefix": "prod/"})
            ).json()
            assert [item["name"] for item in listing["items"]] == [written[1]]
            body = await client.get(
                f"/storage/v1/b/anchors/o/{written[1].replace('/', '%2F')}",
                params={"alt": "media"},
            )
        fetched = tmp_path / "fetched.ndjson"
        fetched.write_bytes(body.content)
        verified = replay(
            database_url, "verify", "--anchor", str(fetched), "--anchor-key", str(public)
        )
        assert verified.returncode == 0 and "3 streams checked" in verified.stdout

        missing = replay(
            database_url, "anchor", "--key-file", str(private), "--out", "gs://no-such/p",
            extra_env=env,
        )
        assert missing.returncode == 1 and "cannot write gs://no-such/p/" in missing.stderr
        assert len(missing.stderr.splitlines()) == 1
    finally:
        server.stop()
