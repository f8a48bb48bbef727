"""``agentlane replay verify`` as a real process: an untouched history exits 0; each kind of
tampering exits 1 and names the stream, the event and what differs."""

from __future__ import annotations

from agentlane.commands import Commands
from tests.replay.conftest import Seeded, event_id_of, replay, rewrite_history, tamper


async def test_untouched_history_verifies(database_url: str, seeded: Seeded) -> None:
    result = replay(database_url, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "OK: 37 events, 3 streams, 5 runs (all tenants)"
    assert "MISMATCH" not in result.stdout and result.stderr == ""


async def test_edited_payload_is_caught(database_url: str, seeded: Seeded) -> None:
    # default/s1: r1 is seq 1-8 (Completed at 8).
    completed = event_id_of(database_url, "default", "s1", 8)
    tamper(database_url, [
        "UPDATE agent_events SET payload = jsonb_set(payload, '{answer}', '\"forged\"') "
        f"WHERE event_id = {completed}"
    ])
    result = replay(database_url, "verify")
    assert result.returncode == 1
    assert (
        f"MISMATCH default/s1 seq 8 event {completed}: hash does not match the event's content"
        in result.stdout
    )
    # The read model still has the true answer: the re-fold shows the edit there too.
    assert "status" not in result.stdout.split("read_runs row", 1)[-1].split("\n")[0]
    assert "answer is 'answer r1', the events say 'forged'" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("(all tenants)")
    assert "Traceback" not in result.stderr


async def test_deleted_row_is_caught(database_url: str, seeded: Seeded) -> None:
    token = event_id_of(database_url, "acme", "s1", 4)
    after = event_id_of(database_url, "acme", "s1", 5)
    tamper(database_url, [f"DELETE FROM agent_events WHERE event_id = {token}"])
    result = replay(database_url, "verify")
    assert result.returncode == 1
    assert f"MISMATCH acme/s1 seq 5 event {after}: seq 5, expected 4" in result.stdout
    assert (
        f"MISMATCH acme/s1 seq 5 event {after}: prev_hash is not the previous event's hash"
        in result.stdout
    )
    # Other streams are still checked and clean.
    assert "default/" not in result.stdout


async def test_swapped_seq_is_caught(database_url: str, seeded: Seeded) -> None:
    a = event_id_of(database_url, "default", "s2", 3)
    b = event_id_of(database_url, "default", "s2", 4)
    tamper(database_url, [
        f"UPDATE agent_events SET seq = 1000000 WHERE event_id = {a}",
        f"UPDATE agent_events SET seq = 3 WHERE event_id = {b}",
        f"UPDATE agent_events SET seq = 4 WHERE event_id = {a}",
    ])
    result = replay(database_url, "verify", "--tenant", "default")
    assert result.returncode == 1
    out = result.stdout
    assert f"MISMATCH default/s2 seq 4 event {a}: event_id {a} does not grow with seq" in out
    assert f"MISMATCH default/s2 seq 3 event {b}: hash does not match" in out
    assert out.splitlines()[-1].endswith("(tenant default)")


async def test_edited_read_model_row_is_caught(database_url: str, seeded: Seeded) -> None:
    ex = seeded.runs[("default", "s1")][1]
    tamper(database_url, [f"UPDATE read_runs SET status = 'failed' WHERE execution_id = '{ex}'"])
    result = replay(database_url, "verify")
    assert result.returncode == 1
    assert (
        f"MISMATCH default/s1: read_runs row of run {ex}: status is 'failed', "
        "the events say 'completed'"
    ) in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "1 MISMATCHES: 37 events, 3 streams, 5 runs (all tenants)"
    )


async def test_read_model_rows_deleted_and_invented_are_caught(
    database_url: str, seeded: Seeded
) -> None:
    tamper(database_url, [
        "DELETE FROM read_sessions WHERE tenant_id = 'acme'",
        "INSERT INTO read_runs (execution_id, tenant_id, session_id, run_id, status, created_at, "
        "updated_at, last_event_id, last_seq) VALUES ('ex_ghost', 'acme', 's9', 'r9', 'completed', "
        "now(), now(), 1, 1)",
        "UPDATE read_usage_daily SET output_tokens = output_tokens + 1 WHERE tenant_id = 'acme'",
    ])
    result = replay(database_url, "verify", "--json")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any('"acme/s1: read_sessions has no row"' in line for line in lines)
    assert any("read_runs has run ex_ghost, which no event names" in line for line in lines)
    assert any(
        "read_usage_daily offline" in line and "output_tokens is 4" in line for line in lines
    )
    assert '"mismatches": 3' in lines[-1] and '"ok": false' in lines[-1]


async def test_a_rewritten_parent_breaks_its_forks_link(
    database_url: str, seeded: Seeded, commands: Commands
) -> None:
    """A superuser's rewrite of a parent's history that recomputes its chain passes the chain
    check, but not the fork that recorded the parent's hash at its cut (as an anchor would)."""
    cut = event_id_of(database_url, "default", "s1", 8)
    fork = await commands.fork_session(
        tenant_id="default", session_id="s1", at_event_id=cut, new_session_id="s1-fork"
    )
    clean = replay(database_url, "verify")
    assert clean.returncode == 0, clean.stdout
    assert "forks: 1 links to their parents checked" in clean.stdout

    rewrite_history(database_url, "default", "s1", 8, {"answer": "forged", "offline": False})
    broken = replay(database_url, "verify")
    assert broken.returncode == 1
    mismatches = [line for line in broken.stdout.splitlines() if line.startswith("MISMATCH")]
    # The parent's own chain verifies (it was recomputed); only the link and the read model show.
    assert f"MISMATCH default/s1-fork seq 1 event {fork.event_id}: the fork's parent s1 event " \
        f"{cut} has hash" in broken.stdout
    assert not any("hash does not match" in line for line in mismatches)
