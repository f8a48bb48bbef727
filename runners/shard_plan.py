"""Which shards a runner holds, should hold, and must let go: pure bookkeeping, no I/O.

The runner's lease loop feeds the plan what the database said (renewals, claims, the live runner
count) and does what it decides (claim so many, hand these back); the watchdog asks it which leases
ran out on the local clock; discovery asks it which shards stalled. Every time is a
``time.monotonic()`` reading passed in, so the plan is tested without a database or a clock
(``tests/runners/test_shard_plan.py``).

Fair share: ``target = ceil(shards / live runners)`` (0 while draining). A runner holding more
hands back the shards with the fewest runs in flight; one holding fewer claims the difference. A
runner has its share once it holds at least ``shards - (live - 1) * target``: what is left when
every peer holds a full share (so a restarted runner is not ready while its old leases still run).
A shard whose due work stalls is given up and not claimed again by this runner for a while (its
back-off), so a peer gets to try it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from agentlane.leases import Fence, Lease
from agentlane.run_index import ShardProgress


@dataclass(frozen=True, slots=True)
class Rebalance:
    """What one lease tick decided."""

    #: This runner's fair share.
    target: int
    #: Shards to hand back (their runs finish the step in flight first).
    hand_back: list[int]
    #: How many more shards to claim.
    claim: int
    #: Shards not to claim now (stalled here recently).
    avoid: list[int]


@dataclass(frozen=True, slots=True)
class Stalls:
    """What a progress check found."""

    #: Shards whose due work has waited past the stall timeout with no advance returning.
    give_up: list[int]
    #: Seconds to the nearest durable timer of an owned shard (None: none scheduled).
    next_wake_in_s: float | None


@dataclass(slots=True)
class ShardPlan:
    """The leases of one runner over ``shards`` shards (see the module docstring)."""

    shards: int
    #: A shard whose due work waits this long with no advance returning is given up, and avoided
    #: for as long again.
    stall_s: float
    leases: dict[int, Lease] = field(default_factory=dict)
    #: Shards being handed back: no new work starts on them.
    releasing: set[int] = field(default_factory=set)
    #: Shards not to claim before the monotonic time given.
    avoid_until: dict[int, float] = field(default_factory=dict)
    #: When an advance of each shard last returned (or the shard was claimed).
    last_progress: dict[int, float] = field(default_factory=dict)
    target: int = 0
    has_share: bool = False

    # --- what the database said ---------------------------------------------------------------

    def renewed(
        self, renewed: Mapping[int | str, Lease], *, releasing_now: Collection[int] = ()
    ) -> list[Lease]:
        """Take a renewal's answer for every lease held when it was sent; returns the leases it
        found gone (expired or taken). A lease released while the renewal ran is no loss."""
        lost = []
        for shard, lease in list(self.leases.items()):
            fresh = renewed.get(shard)
            if fresh is not None:
                self.leases[shard] = fresh
            elif shard not in releasing_now:
                lost.append(lease)
        return lost

    def claimed(self, leases: Iterable[Lease], now: float) -> None:
        for lease in leases:
            self.leases[lease.shard_id] = lease
            self.last_progress[lease.shard_id] = now

    def lost(self, shard: int, token: int) -> Lease | None:
        """Forget a lease that is gone (or may be), if it is still the one with ``token``."""
        lease = self.leases.get(shard)
        if lease is None or lease.token != token:
            return None
        del self.leases[shard]
        self.releasing.discard(shard)
        self.last_progress.pop(shard, None)
        return lease

    def handing_back(self, shard: int) -> None:
        """A hand-back of ``shard`` started (a stall, a lost fence): it no longer counts as
        active, and no other hand-back is chosen for it."""
        self.releasing.add(shard)

    def released(self, shard: int, lease: Lease) -> None:
        """A hand-back finished (released, or left to expire)."""
        held = self.leases.get(shard)
        # Same fence, not the same object: a renewal that ran alongside the release replaced the
        # Lease object (same token, later deadline) and the released lease must still go.
        if held is not None and held.fence == lease.fence:
            del self.leases[shard]
        self.releasing.discard(shard)
        self.last_progress.pop(shard, None)

    def progressed(self, shard: int, now: float) -> None:
        self.last_progress[shard] = now

    # --- decisions ----------------------------------------------------------------------------

    def rebalance(
        self, *, live_runners: int, draining: bool, in_flight: Mapping[int, int], now: float
    ) -> Rebalance:
        """The fair share for ``live_runners`` (this one included unless draining), the extras to
        hand back (fewest runs in flight first), how many to claim and which to avoid."""
        self.target = 0 if draining else math.ceil(self.shards / max(1, live_runners))
        active = [shard for shard in self.leases if shard not in self.releasing]
        extras = max(0, len(active) - self.target)
        hand_back = sorted(active, key=lambda s: (in_flight.get(s, 0), -s))[:extras]
        self.releasing.update(hand_back)
        for shard in [s for s, until in self.avoid_until.items() if until <= now]:
            del self.avoid_until[shard]
        return Rebalance(
            target=self.target,
            hand_back=hand_back,
            claim=max(0, self.target - len(self.leases)),
            avoid=sorted(self.avoid_until),
        )

    def settle(self, *, live_runners: int, draining: bool) -> None:
        """After a tick's claims: whether this runner now holds its share (``has_share``)."""
        # The least this runner may end up with when every peer holds the full share.
        least = self.shards - (max(1, live_runners) - 1) * self.target
        self.has_share = not draining and len(self.leases) >= least

    def hand_back_all(self) -> list[int]:
        """Draining: every shard not already on its way back."""
        shards = [shard for shard in self.leases if shard not in self.releasing]
        self.releasing.update(shards)
        return shards

    def expired(self, now: float) -> list[Lease]:
        """Leases whose local deadline has passed without a renewal."""
        return [lease for lease in self.leases.values() if lease.deadline <= now]

    def next_deadline(self) -> float | None:
        return min((lease.deadline for lease in self.leases.values()), default=None)

    def active_fences(self, now: float) -> dict[int, Fence]:
        """The shards new work may start on: held, not being handed back, not past deadline."""
        return {
            shard: lease.fence
            for shard, lease in self.leases.items()
            if shard not in self.releasing and lease.deadline > now
        }

    def stalls(self, progress: Mapping[int, ShardProgress], now: float) -> Stalls:
        """Shards to give up (and avoid for ``stall_s``), and the time to the next timer."""
        give_up = []
        next_wake: float | None = None
        for shard, state in progress.items():
            if state.next_wake_in_s is not None:
                next_wake = (
                    state.next_wake_in_s if next_wake is None
                    else min(next_wake, state.next_wake_in_s)
                )
            if state.oldest_due_age_s is None:
                self.last_progress[shard] = now
                continue
            idle_s = now - self.last_progress.get(shard, now)
            if state.oldest_due_age_s > self.stall_s and idle_s > self.stall_s:
                self.avoid_until[shard] = now + self.stall_s
                give_up.append(shard)
        return Stalls(give_up=give_up, next_wake_in_s=next_wake)
