"""``replay verify``'s check of fork links: a forked session's first event names its parent's
event at the cut and that event's chain hash, and the fork's own chain covers that record. The
parent's event must still be there, at that ``seq``, with that hash: a rewrite of the parent's
history up to the cut (even one that recomputed the parent's chain) breaks the link, as it would
break an anchor.
"""

from __future__ import annotations

from collections.abc import Callable

from agentlane.replay.verify import Mismatch
from agentlane.store.audit import EventFilter, Snapshot, fork_links


def check_forks(
    conn: Snapshot, where: EventFilter, *, report: Callable[[Mismatch], None]
) -> tuple[int, int]:
    """Check every fork link of the sessions matching ``where``: ``(links, mismatches)``."""
    links = mismatches = 0
    for link in fork_links(conn, where):
        links += 1
        parent = f"{link.parent_session_id} event {link.at_event_id}"
        if link.found_hash is None:
            problem = f"the fork's parent {parent} is gone"
        elif link.found_seq != link.at_seq:
            problem = f"the fork's parent {parent} is at seq {link.found_seq}, not {link.at_seq}"
        elif link.found_hash.hex() != link.parent_hash:
            problem = (
                f"the fork's parent {parent} has hash {link.found_hash.hex()[:16]}…, the fork "
                f"recorded {link.parent_hash[:16]}…: the parent's history changed"
            )
        else:
            continue
        mismatches += 1
        report(Mismatch(link.tenant_id, link.session_id, problem, 1, link.event_id))
    return links, mismatches
