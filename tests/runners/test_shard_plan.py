"""The runner's lease bookkeeping (:class:`runners.shard_plan.ShardPlan`) without a database.

Time is a float passed in (a ``time.monotonic()`` reading in production). The first tests check
each decision of the plan against its definition on generated plans; the state machine at the end
runs several runners' plans against a simulated lease table and membership, exactly as
``Runner._lease_tick``, the watchdog, discovery and the hand-back tasks drive them, and checks
that no two runners ever work one shard and that a quiet cluster settles on a fair split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from agentlane.leases import Fence, Lease
from agentlane.run_index import ShardProgress
from runners.shard_plan import ShardPlan

HOLDER = "runner-a"
#: The wall-clock origin of generated ``expires_at`` values (never ``datetime.now()``).
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def eighths(low: float, high: float) -> st.SearchStrategy[float]:
    """Multiples of 1/8 in [low, high]: exact in binary, so ``now - (now - x) == x`` and the
    boundaries (a deadline exactly now, an age exactly the timeout) come up."""
    return st.integers(int(low * 8), int(high * 8)).map(lambda eighth: eighth / 8)


instants = eighths(0, 1e6)
offsets = eighths(-30, 30)


def make_lease(shard: int, token: int, deadline: float, holder: str = HOLDER) -> Lease:
    return Lease(
        fence=Fence(shard, holder, token),
        expires_at=EPOCH + timedelta(seconds=deadline),
        deadline=deadline,
    )


@dataclass(frozen=True)
class Case:
    """A generated plan and the time it is asked at."""

    plan: ShardPlan
    now: float


@st.composite
def cases(draw: st.DrawFn, max_shards: int = 128, *, details: bool = True) -> Case:
    """A plan over 1..``max_shards`` shards holding any number of them, some being handed back,
    with ``avoid_until`` entries before, at and after ``now``; with ``details``, random tokens,
    deadlines around ``now`` and last progress times (without: token 1, deadline now + 1)."""
    shards = draw(st.integers(1, max_shards), label="shards")
    now = draw(instants, label="now")
    stall_s = draw(eighths(0.5, 60), label="stall_s")
    count = draw(st.integers(0, shards), label="held")
    order = list(range(shards))
    for i in range(count):  # the first ``count`` steps of a Fisher-Yates shuffle
        j = draw(st.integers(i, shards - 1))
        order[i], order[j] = order[j], order[i]
    held = order[:count]
    plan = ShardPlan(shards, stall_s=stall_s)
    idle = st.none() | st.just(stall_s) | eighths(0, 120)
    for shard in held:
        if not details:
            plan.leases[shard] = make_lease(shard, 1, now + 1)
            continue
        token = draw(st.integers(1, 10**6))
        plan.leases[shard] = make_lease(shard, token, now + draw(offsets))
        since = draw(idle)
        if since is not None:
            plan.last_progress[shard] = now - since
    releasing = draw(st.lists(st.booleans(), min_size=count, max_size=count), label="releasing")
    plan.releasing.update(shard for shard, flag in zip(held, releasing, strict=True) if flag)
    plan.avoid_until.update(
        draw(
            st.dictionaries(
                st.integers(0, shards - 1), offsets.map(lambda off: now + off), max_size=12
            ),
            label="avoid_until",
        )
    )
    return Case(plan, now)


def in_flight_for(plan: ShardPlan) -> st.SearchStrategy[dict[int, int]]:
    """Runs in flight per held shard (small counts, so ties are common); shards left out have
    none."""
    return st.dictionaries(st.sampled_from(sorted(plan.leases) or [0]), st.integers(0, 3))


# --- rebalance and settle -------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(case=cases(), live=st.integers(1, 10), draining=st.booleans(), data=st.data())
def test_rebalance_hands_back_the_idlest_extras_and_claims_the_rest_of_the_share(
    case: Case, live: int, draining: bool, data: st.DataObject
) -> None:
    """Target is ceil(shards / live) (0 while draining); exactly the active shards beyond it are
    handed back, those with the fewest runs in flight first (ties: higher shard first), and they
    become ``releasing``; the claim fills the share counting every lease still held; the avoid
    list is exactly the back-offs still running, and expired back-offs are forgotten."""
    plan, now = case.plan, case.now
    in_flight = data.draw(in_flight_for(plan), label="in_flight")
    leases_before = dict(plan.leases)
    releasing_before = set(plan.releasing)
    avoid_before = dict(plan.avoid_until)
    active = set(plan.leases) - releasing_before

    decision = plan.rebalance(live_runners=live, draining=draining, in_flight=in_flight, now=now)

    target = 0 if draining else math.ceil(plan.shards / live)
    assert decision.target == plan.target == target
    handed = set(decision.hand_back)
    assert len(handed) == len(decision.hand_back), "a shard handed back twice"
    assert handed <= active
    assert len(handed) == max(0, len(active) - target)

    def idleness(shard: int) -> tuple[int, int]:
        return in_flight.get(shard, 0), -shard

    for given_back in handed:
        for kept in active - handed:
            assert idleness(given_back) < idleness(kept), (given_back, kept, in_flight)
    assert plan.releasing == releasing_before | handed
    assert plan.leases == leases_before, "rebalance itself drops no lease"
    assert decision.claim == max(0, target - len(leases_before))
    running = {shard: until for shard, until in avoid_before.items() if until > now}
    assert decision.avoid == sorted(running)
    assert plan.avoid_until == running


@settings(max_examples=100, deadline=None)
@given(case=cases(details=False), live=st.integers(1, 10), draining=st.booleans())
def test_settle_has_share_once_the_leftover_of_full_peer_shares_is_held(
    case: Case, live: int, draining: bool
) -> None:
    """``has_share`` iff not draining and the plan holds at least what is left when every peer
    holds a full share: a full share always counts, and a lone runner needs every shard."""
    plan = case.plan
    plan.rebalance(live_runners=live, draining=draining, in_flight={}, now=case.now)
    held = len(plan.leases)
    plan.settle(live_runners=live, draining=draining)

    assert plan.has_share == (not draining and held >= plan.shards - (live - 1) * plan.target)
    if not draining and held >= plan.target:
        assert plan.has_share
    if live == 1:
        assert plan.has_share == (not draining and held == plan.shards)


@settings(max_examples=100, deadline=None)
@given(case=cases(max_shards=32))
def test_hand_back_all_starts_one_hand_back_per_held_shard(case: Case) -> None:
    """Drain: every held shard not already on its way back is returned (once), and afterwards
    every held shard is being handed back; no lease is dropped before its release."""
    plan = case.plan
    leases, releasing = dict(plan.leases), set(plan.releasing)
    shards = plan.hand_back_all()
    assert sorted(shards) == sorted(set(leases) - releasing)
    assert plan.releasing == set(leases) and plan.leases == leases
    assert plan.hand_back_all() == []


def test_a_draining_plan_never_has_its_share() -> None:
    """Draining: target 0, every active shard handed back, nothing claimed, and not ready even
    while it still holds every shard."""
    plan = ShardPlan(4, stall_s=5.0)
    plan.claimed([make_lease(shard, 1, 10.0) for shard in range(4)], now=0.0)
    plan.handing_back(2)  # given up as stalled before the drain
    decision = plan.rebalance(live_runners=0, draining=True, in_flight={0: 2}, now=1.0)
    plan.settle(live_runners=0, draining=True)
    assert (decision.target, decision.claim) == (0, 0)
    assert sorted(decision.hand_back) == [0, 1, 3]
    assert not plan.has_share


# --- what the database said -----------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(case=cases(max_shards=32), data=st.data())
def test_renewed_replaces_renewed_leases_and_reports_the_others_lost(
    case: Case, data: st.DataObject
) -> None:
    """Leases missing from the renewal's answer are reported lost (and stay held until ``lost``
    is told, so the runner can still stop their work), except a shard whose release is running;
    renewed leases are replaced by the fresh objects; shards not held are not adopted."""
    plan = case.plan
    held = sorted(plan.leases)
    before = dict(plan.leases)
    answered = data.draw(st.sets(st.sampled_from(held)) if held else st.just(set[int]()))
    strangers = data.draw(st.sets(st.integers(plan.shards, plan.shards + 5), max_size=2))
    answer: dict[int | str, Lease] = {
        shard: make_lease(shard, before[shard].token, case.now + 10) for shard in answered
    }
    answer.update({shard: make_lease(shard, 1, case.now + 10) for shard in strangers})
    releasing_now = data.draw(st.sets(st.sampled_from(held)) if held else st.just(set[int]()))

    lost = plan.renewed(answer, releasing_now=releasing_now)

    expected_lost = [before[s] for s in held if s not in answered and s not in releasing_now]
    assert sorted(lost, key=lambda lease: lease.shard_id) == expected_lost
    assert all(lease is before[lease.shard_id] for lease in lost)
    assert sorted(plan.leases) == held
    for shard in held:
        assert plan.leases[shard] is (answer[shard] if shard in answered else before[shard])

    for lease in lost:
        assert plan.lost(lease.shard_id, lease.token) is lease
    assert sorted(plan.leases) == sorted(set(held) - {lease.shard_id for lease in lost})


@settings(max_examples=100, deadline=None)
@given(case=cases(max_shards=32), data=st.data())
def test_lost_forgets_only_the_lease_with_that_token(case: Case, data: st.DataObject) -> None:
    """A loss report removes the lease only when its token is the held one (a late report about
    an older lease of the shard changes nothing), and then clears its hand-back and progress."""
    plan = case.plan
    shard = data.draw(st.integers(0, plan.shards - 1), label="shard")
    held = plan.leases.get(shard)
    token = data.draw(
        st.sampled_from([held.token, held.token - 1, held.token + 1])
        if held is not None
        else st.integers(0, 10**6),
        label="token",
    )
    leases, releasing = dict(plan.leases), set(plan.releasing)
    progress = dict(plan.last_progress)

    result = plan.lost(shard, token)

    if held is not None and token == held.token:
        assert result is held
        del leases[shard]
        releasing.discard(shard)
        progress.pop(shard, None)
    else:
        assert result is None
    assert (plan.leases, plan.releasing, plan.last_progress) == (leases, releasing, progress)


def test_a_stale_loss_report_keeps_the_newer_lease() -> None:
    """Lost at token 4, reclaimed at token 5: the watchdog's late report about 4 is ignored."""
    plan = ShardPlan(8, stall_s=5.0)
    plan.claimed([make_lease(6, 4, 10.0)], now=0.0)
    assert plan.lost(6, 4) is not None
    newer = make_lease(6, 5, 20.0)
    plan.claimed([newer], now=11.0)
    assert plan.lost(6, 4) is None
    assert plan.leases == {6: newer} and plan.last_progress == {6: 11.0}


def test_released_deletes_the_held_lease_but_not_a_newer_one() -> None:
    """A finished hand-back forgets the lease it released; when the shard has since been claimed
    again (a higher token), the newer lease stays."""
    plan = ShardPlan(8, stall_s=5.0)
    old = make_lease(2, 7, 10.0)
    plan.claimed([old, make_lease(5, 1, 10.0)], now=0.0)
    plan.handing_back(2)
    plan.released(2, old)
    assert sorted(plan.leases) == [5] and 2 not in plan.releasing and 2 not in plan.last_progress

    newer = make_lease(2, 8, 20.0)
    plan.claimed([newer], now=12.0)
    plan.released(2, old)
    assert plan.leases[2] is newer


def test_a_lease_renewed_while_its_release_runs_is_forgotten_when_the_release_returns() -> None:
    """The lease tick's renewal and a hand-back's release run concurrently. When the renewal
    (sent first) extends the lease, then the release frees it in the table, and the tick resumes
    first, ``renewed`` swaps in a fresh Lease object for the shard; ``released`` must still
    forget the shard (same fence), or the runner keeps starting work on a shard it gave back."""
    plan = ShardPlan(4, stall_s=5.0)
    old = make_lease(3, 7, 10.0)
    plan.claimed([old], now=0.0)
    plan.handing_back(3)  # Runner._hand_back
    fresh = make_lease(3, 7, 13.0)

    assert plan.renewed({3: fresh}, releasing_now={3}) == []
    plan.released(3, old)  # the release task resumes with the lease it read before

    assert plan.leases == {}
    assert plan.active_fences(11.0) == {}


# --- the watchdog and discovery ----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(case=cases(max_shards=32))
def test_expired_next_deadline_and_active_fences_agree_with_the_deadlines(case: Case) -> None:
    """Expired = deadline passed (a deadline equal to now has passed); the next deadline is the
    earliest; active = held, not being handed back, deadline ahead. Every held shard is exactly
    one of expired, handed back (not expired), active."""
    plan, now = case.plan, case.now
    expired = plan.expired(now)
    fences = plan.active_fences(now)

    assert {lease.shard_id for lease in expired} == {
        shard for shard, lease in plan.leases.items() if lease.deadline <= now
    }
    assert all(plan.leases[lease.shard_id] is lease for lease in expired)
    assert fences == {
        shard: lease.fence
        for shard, lease in plan.leases.items()
        if shard not in plan.releasing and lease.deadline > now
    }
    nearest = plan.next_deadline()
    if not plan.leases:
        assert nearest is None
    else:
        assert nearest == min(lease.deadline for lease in plan.leases.values())
        assert bool(expired) == (nearest <= now)
    expired_shards = {lease.shard_id for lease in expired}
    for shard in plan.leases:
        kinds = [shard in expired_shards, shard in plan.releasing and shard not in expired_shards,
                 shard in fences]
        assert kinds.count(True) == 1, (shard, kinds)


def progress_states(stall_s: float) -> st.SearchStrategy[ShardProgress]:
    ages = st.none() | st.just(stall_s) | eighths(0, 120)
    wakes = st.none() | st.just(0.0) | eighths(0, 120)
    return st.builds(ShardProgress, oldest_due_age_s=ages, next_wake_in_s=wakes)


@settings(max_examples=100, deadline=None)
@given(case=cases(max_shards=32), data=st.data())
def test_stalls_gives_up_shards_idle_past_the_timeout_and_finds_the_next_timer(
    case: Case, data: st.DataObject
) -> None:
    """A shard is given up iff its oldest due work is older than ``stall_s`` and no advance
    returned for more than ``stall_s`` (a shard never seen progressing counts as progressing
    now); it is then avoided until now + ``stall_s``. A shard with no due work is progressing
    now. The next wake is the earliest timer of any shard (None when there is none)."""
    plan, now = case.plan, case.now
    shard_ids = st.integers(0, plan.shards - 1)
    progress = data.draw(
        st.dictionaries(shard_ids, progress_states(plan.stall_s), max_size=16), label="progress"
    )
    last_before = dict(plan.last_progress)
    avoid_before = dict(plan.avoid_until)

    stalls = plan.stalls(progress, now)

    stall_s = plan.stall_s
    expected = [
        shard
        for shard, state in progress.items()
        if state.oldest_due_age_s is not None
        and state.oldest_due_age_s > stall_s
        and now - last_before.get(shard, now) > stall_s
    ]
    assert sorted(stalls.give_up) == sorted(expected)
    assert plan.avoid_until == avoid_before | {shard: now + stall_s for shard in expected}
    assert plan.last_progress == last_before | {
        shard: now for shard, state in progress.items() if state.oldest_due_age_s is None
    }
    wakes = [s.next_wake_in_s for s in progress.values() if s.next_wake_in_s is not None]
    assert stalls.next_wake_in_s == (min(wakes) if wakes else None)


def test_a_timer_due_now_is_the_next_wake() -> None:
    """A timer 0.0 s away is the nearest, even when another shard's timer comes later."""
    plan = ShardPlan(4, stall_s=5.0)
    progress = {0: ShardProgress(None, 0.0), 1: ShardProgress(None, 5.0)}
    assert plan.stalls(progress, now=100.0).next_wake_in_s == 0.0


def test_a_shard_given_up_is_avoided_until_the_back_off_ends() -> None:
    """Given up at t=100 with stall_s=5: avoided by rebalances before t=105, claimable at 105."""
    plan = ShardPlan(4, stall_s=5.0)
    plan.claimed([make_lease(1, 1, 110.0)], now=90.0)
    stalls = plan.stalls({1: ShardProgress(oldest_due_age_s=30.0, next_wake_in_s=None)}, 100.0)
    assert stalls.give_up == [1]
    plan.released(1, plan.leases[1])
    assert plan.rebalance(live_runners=1, draining=False, in_flight={}, now=104.5).avoid == [1]
    assert plan.rebalance(live_runners=1, draining=False, in_flight={}, now=105.0).avoid == []


# --- a cluster of plans against a simulated lease table ------------------------------------------

TTL_S = 3.0
#: Runner._tick_s: the lease loop runs every TTL/3.
TICK_S = TTL_S / 3
#: Shorter than the TTL, so discovery gives up shards whose leases are still renewed.
STALL_S = 2.0
MAX_ALIVE = 4


@dataclass
class Row:
    """One row of ``cluster_shards``."""

    holder: str | None = None
    token: int = 0
    expires_at: float | None = None


@dataclass
class Member:
    """One row of ``cluster_runners``."""

    heartbeat_at: float
    draining: bool = False


@dataclass
class SimRunner:
    """A runner process: its plan, and the hand-back tasks it runs (``Runner._handbacks``)."""

    runner_id: str
    plan: ShardPlan
    state: Literal["alive", "crashed", "stopped"] = "alive"
    draining: bool = False
    handbacks: set[int] = field(default_factory=set)
    #: When discovery last gave up each shard as stalled.
    given_up: dict[int, float] = field(default_factory=dict)


#: Where a hand-back's release, racing a lease tick's renewal, returns in the tick.
ResumePoint = Literal["before_renewed", "after_renewed", "after_claimed"]


@dataclass(frozen=True)
class Race:
    """A hand-back whose release runs while the tick's renewal is in flight."""

    shard: int
    release_first: bool  # the order the two statements run in the database
    resumes: ResumePoint


class ClusterMachine(RuleBasedStateMachine):
    """Runners with one ShardPlan each, a lease table and a membership table on one clock.

    The simulated table mirrors ``agentlane.leases.Leases``: a claim takes free or expired rows
    (not avoided) in key order and bumps the token; a renewal extends a row only while it has the
    same holder and token and has not expired; a release frees a row with the same holder and
    token. A lease's local deadline is the row's expiry (the latest a conservative deadline can
    be). Membership mirrors ``runners.membership.Membership.heartbeat``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shards = 0
        self.now = 0.0
        self.table: dict[int, Row] = {}
        self.members: dict[str, Member] = {}
        self.runners: dict[str, SimRunner] = {}
        self.started = 0
        #: When the last quiet period ended (the next needs time to have passed).
        self.settled_at = -1.0

    # --- the database ---------------------------------------------------------------------------

    def _claim(self, runner: SimRunner, count: int, avoid: list[int]) -> list[Lease]:
        leases: list[Lease] = []
        for shard, row in sorted(self.table.items()):
            if len(leases) == count:
                break
            free = row.holder is None or row.expires_at is None or row.expires_at <= self.now
            if free and shard not in avoid:
                row.holder, row.token = runner.runner_id, row.token + 1
                row.expires_at = self.now + TTL_S
                leases.append(make_lease(shard, row.token, row.expires_at, runner.runner_id))
        return leases

    def _renew(self, runner: SimRunner, held: list[Lease]) -> dict[int | str, Lease]:
        renewed: dict[int | str, Lease] = {}
        for lease in held:
            row = self.table[lease.shard_id]
            if (
                (row.holder, row.token) == (runner.runner_id, lease.token)
                and row.expires_at is not None
                and row.expires_at > self.now
            ):
                row.expires_at = self.now + TTL_S
                renewed[lease.shard_id] = make_lease(
                    lease.shard_id, lease.token, row.expires_at, runner.runner_id
                )
        return renewed

    def _release(self, runner: SimRunner, lease: Lease) -> None:
        row = self.table[lease.shard_id]
        if (row.holder, row.token) == (runner.runner_id, lease.token):
            row.holder, row.expires_at = None, None

    def _heartbeat(self, runner: SimRunner) -> tuple[int, bool]:
        """(live runners, registered): the live non-draining peers, plus this one unless it
        drains; rows silent for thirty TTLs are pruned."""
        for runner_id, member in list(self.members.items()):
            if member.heartbeat_at < self.now - 30 * TTL_S:
                del self.members[runner_id]
        registered = runner.runner_id in self.members
        peers = sum(
            1
            for runner_id, member in self.members.items()
            if runner_id != runner.runner_id
            and not member.draining
            and member.heartbeat_at > self.now - TTL_S
        )
        if registered:
            self.members[runner.runner_id] = Member(self.now, runner.draining)
        return peers + (0 if runner.draining else 1), registered

    # --- the runner process ------------------------------------------------------------------

    def _join(self) -> SimRunner:
        runner = SimRunner(f"runner-{self.started}", ShardPlan(self.shards, stall_s=STALL_S))
        self.started += 1
        self.runners[runner.runner_id] = runner
        self.members[runner.runner_id] = Member(self.now)
        return runner

    def _alive(self) -> list[SimRunner]:
        return [r for r in self.runners.values() if r.state == "alive"]

    def _pick(self, data: st.DataObject, runners: list[SimRunner]) -> SimRunner:
        return self.runners[data.draw(st.sampled_from([r.runner_id for r in runners]), "runner")]

    def _lose(self, runner: SimRunner, shard: int, token: int) -> None:
        """Runner._lease_lost."""
        if runner.plan.lost(shard, token) is not None:
            runner.handbacks.discard(shard)  # the hand-back task is cancelled

    def _hand_back(self, runner: SimRunner, shard: int) -> None:
        """Runner._hand_back."""
        if shard not in runner.handbacks:
            runner.plan.handing_back(shard)
            runner.handbacks.add(shard)

    def _end_hand_back(self, runner: SimRunner, shard: int, lease: Lease | None) -> None:
        """The end of Runner._release_when_idle, after the release statement ran."""
        if lease is not None:
            runner.plan.released(shard, lease)
        runner.handbacks.discard(shard)

    def _finish_hand_back(self, runner: SimRunner, shard: int) -> None:
        lease = runner.plan.leases.get(shard)
        if lease is not None:
            self._release(runner, lease)
        self._end_hand_back(runner, shard, lease)

    def _maybe_drained(self, runner: SimRunner) -> None:
        """Runner.drain: once every hand-back ended, deregister and stop."""
        if runner.state == "alive" and runner.draining and not runner.handbacks:
            assert runner.plan.leases == {}, f"drained with leases {runner.plan.leases}"
            self.members.pop(runner.runner_id, None)
            runner.state = "stopped"

    def _tick(self, runner: SimRunner, race: Race | None, in_flight: Mapping[int, int]) -> None:
        """Runner._lease_tick; ``race``: a hand-back whose release overlaps the renewal."""
        plan = runner.plan
        live, registered = self._heartbeat(runner)
        if not registered and not runner.draining:
            self.members[runner.runner_id] = Member(self.now)
        sent = list(plan.leases.values())
        racing: Lease | None = None
        if race is not None:
            racing = plan.leases.get(race.shard)
            if racing is not None and race.release_first:
                self._release(runner, racing)
        renewed = self._renew(runner, sent)
        if race is not None and racing is not None and not race.release_first:
            self._release(runner, racing)
        if race is not None and race.resumes == "before_renewed":
            self._end_hand_back(runner, race.shard, racing)
            race = None
        releasing_now = () if race is None or racing is None else (race.shard,)
        for lease in plan.renewed(renewed, releasing_now=releasing_now):
            self._lose(runner, lease.shard_id, lease.token)
        if race is not None and race.resumes == "after_renewed":
            self._end_hand_back(runner, race.shard, racing)
            race = None

        decision = plan.rebalance(
            live_runners=live, draining=runner.draining,
            in_flight={s: n for s, n in in_flight.items() if s in plan.leases}, now=self.now,
        )
        for shard in decision.hand_back:
            self._hand_back(runner, shard)
        if decision.claim > 0:
            plan.claimed(self._claim(runner, decision.claim, decision.avoid), self.now)
        if race is not None:
            self._end_hand_back(runner, race.shard, racing)
        plan.settle(live_runners=live, draining=runner.draining)

        # What the tick guarantees on its own.
        assert plan.target == (0 if runner.draining else math.ceil(self.shards / live))
        active = set(plan.leases) - plan.releasing
        assert len(active) <= plan.target, (active, plan.target)
        avoided = sorted(s for s, at in runner.given_up.items() if at + STALL_S > self.now)
        assert decision.avoid == avoided

    def _round(self, data: st.DataObject) -> None:
        """Every running runner ticks (in a drawn order) and its hand-backs finish."""
        order = data.draw(st.permutations([r.runner_id for r in self._alive()]), "tick order")
        for runner in (self.runners[runner_id] for runner_id in order):
            if runner.state != "alive":
                continue
            self._tick(runner, None, {})
            for shard in sorted(runner.handbacks):
                self._finish_hand_back(runner, shard)
            self._maybe_drained(runner)

    # --- rules ----------------------------------------------------------------------------------

    # Drawn from lists rather than ranges, so examples spread evenly over them (integer
    # strategies lean to the low end, where one shard or one runner decides little).
    @initialize(
        shards=st.sampled_from((5, 7, 12, 1, 2, 3, 4, 6, 8, 9, 10, 11)),
        runners=st.sampled_from((2, 3, 1, 4)),
    )
    def start(self, shards: int, runners: int) -> None:
        self.shards = shards
        self.table = {shard: Row() for shard in range(shards)}
        for _ in range(runners):
            self._join()

    @precondition(lambda self: len(self._alive()) < MAX_ALIVE)
    @rule()
    def runner_joins(self) -> None:
        self._join()

    def _in_flight(self, data: st.DataObject, runner: SimRunner) -> dict[int, int]:
        held = sorted(runner.plan.leases)
        counts = data.draw(
            st.lists(st.integers(0, 3), min_size=len(held), max_size=len(held)), label="in flight"
        )
        return dict(zip(held, counts, strict=True))

    @precondition(lambda self: bool(self._alive()))
    @rule(data=st.data())
    def lease_tick(self, data: st.DataObject) -> None:
        runner = self._pick(data, self._alive())
        self._tick(runner, None, self._in_flight(data, runner))
        self._maybe_drained(runner)

    @precondition(lambda self: any(r.handbacks for r in self._alive()))
    @rule(
        data=st.data(),
        release_first=st.booleans(),
        resumes=st.sampled_from(("before_renewed", "after_renewed", "after_claimed")),
    )
    def lease_tick_while_a_release_runs(
        self, data: st.DataObject, release_first: bool, resumes: ResumePoint
    ) -> None:
        """A hand-back's release statement runs while the tick's renewal is in flight (in either
        order in the database), and its task resumes at some point of the tick."""
        runner = self._pick(data, [r for r in self._alive() if r.handbacks])
        shard = data.draw(st.sampled_from(sorted(runner.handbacks)), label="racing hand-back")
        self._tick(runner, Race(shard, release_first, resumes), self._in_flight(data, runner))
        self._maybe_drained(runner)

    @precondition(lambda self: any(r.handbacks for r in self._alive()))
    @rule(data=st.data())
    def hand_back_finishes(self, data: st.DataObject) -> None:
        runner = self._pick(data, [r for r in self._alive() if r.handbacks])
        shard = data.draw(st.sampled_from(sorted(runner.handbacks)), label="shard")
        self._finish_hand_back(runner, shard)
        self._maybe_drained(runner)

    @precondition(lambda self: bool(self._alive()))
    @rule(data=st.data())
    def watchdog(self, data: st.DataObject) -> None:
        runner = self._pick(data, self._alive())
        for lease in runner.plan.expired(self.now):
            self._lose(runner, lease.shard_id, lease.token)
        self._maybe_drained(runner)

    @precondition(lambda self: bool(self._alive()))
    @rule(data=st.data())
    def discovery_checks_progress(self, data: st.DataObject) -> None:
        """Some advances returned (``progressed``), then Runner._check_progress over the active
        shards, with drawn due-work ages; shards given up are handed back."""
        runner = self._pick(data, self._alive())
        shards = sorted(runner.plan.active_fences(self.now))
        if shards:
            for shard in data.draw(st.sets(st.sampled_from(shards)), label="advanced"):
                runner.plan.progressed(shard, self.now)
        ages = st.none() | st.sampled_from((0.5, STALL_S, STALL_S + 0.5, 60.0))
        progress = {
            shard: ShardProgress(data.draw(ages, label=f"age {shard}"), None) for shard in shards
        }
        for shard in runner.plan.stalls(progress, self.now).give_up:
            runner.given_up[shard] = self.now
            self._hand_back(runner, shard)

    @rule(dt=st.sampled_from((1.0, 0.5, 1.0, 2.5, 3.5)))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    def _serving(self) -> list[SimRunner]:
        return [r for r in self._alive() if not r.draining]

    @precondition(lambda self: len(self._serving()) > 1)
    @rule(data=st.data())
    def runner_crashes(self, data: st.DataObject) -> None:
        """It stops ticking and renewing: its leases and heartbeat run out after a TTL. (One
        serving runner always stays, or most examples end with an empty cluster.)"""
        self._pick(data, self._alive()).state = "crashed"

    @precondition(lambda self: len(self._serving()) > 1)
    @rule(data=st.data())
    def runner_drains(self, data: st.DataObject) -> None:
        """Runner.drain: hand every shard back, tell peers; the lease loop keeps running."""
        runner = self._pick(data, self._serving())
        runner.draining = True
        for shard in runner.plan.hand_back_all():
            self._hand_back(runner, shard)
        if runner.runner_id in self.members:
            self.members[runner.runner_id] = Member(self.now, draining=True)
        self._maybe_drained(runner)

    @precondition(lambda self: self.now > self.settled_at)
    @rule(data=st.data())
    def cluster_settles(self, data: st.DataObject) -> None:
        """No joins, crashes or drains for a while; the runners tick every TTL/3 and hand-backs
        finish. Once crashed runners' leases and heartbeats ran out, back-offs ended and every
        runner heartbeated, two more rounds of ticks give every shard to exactly one live runner,
        each holding between shards - (N-1)*ceil(shards/N) and ceil(shards/N), all ready."""
        for runner in self._alive():
            for shard in sorted(runner.handbacks):
                self._finish_hand_back(runner, shard)
            self._maybe_drained(runner)
        quiet_at = max(
            [self.now]
            + [
                row.expires_at
                for row in self.table.values()
                if row.holder is not None
                and row.expires_at is not None
                and self.runners[row.holder].state != "alive"
            ]
            + [
                member.heartbeat_at + TTL_S
                for runner_id, member in self.members.items()
                if self.runners[runner_id].state != "alive"
            ]
            + [until for r in self._alive() for until in r.plan.avoid_until.values()]
        )
        self._round(data)
        while self.now + TICK_S < quiet_at:
            self.now += TICK_S
            self._round(data)
        for _ in range(2):
            self.now += TICK_S
            self._round(data)

        self.settled_at = self.now
        runners = self._alive()
        assert all(not r.draining for r in runners), "a drain did not finish"
        assert runners, "no runner serves"
        target = math.ceil(self.shards / len(runners))
        owner: dict[int, str] = {}
        for runner in runners:
            plan = runner.plan
            assert plan.target == target
            assert not plan.releasing and not runner.handbacks
            assert self.shards - (len(runners) - 1) * target <= len(plan.leases) <= target
            assert plan.has_share
            for shard, lease in plan.leases.items():
                row = self.table[shard]
                assert (row.holder, row.token) == (runner.runner_id, lease.token)
                assert row.expires_at is not None and row.expires_at > self.now
                assert shard not in owner, f"shard {shard}: {owner[shard]} and {runner.runner_id}"
                owner[shard] = runner.runner_id
        assert sorted(owner) == list(range(self.shards)), f"unowned: {owner}"

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def no_two_runners_work_one_shard(self) -> None:
        """Every lease a plan holds before its deadline is the table's current lease of that
        shard (same holder and token, not expired), so at most one runner may work a shard; a
        plan's hand-backs are its running hand-back tasks, all of held shards. A running runner
        works at most the share it computed at its last tick (``plan.target``): it can be more
        than the fair share for the current membership until its next tick, never more than
        its own last target, as only a tick claims and a tick hands the extras back."""
        working: dict[int, str] = {}
        for runner in self.runners.values():
            plan = runner.plan
            assert plan.releasing <= plan.leases.keys(), (plan.releasing, sorted(plan.leases))
            if runner.state == "alive":
                assert plan.releasing == runner.handbacks
                assert len(plan.leases.keys() - plan.releasing) <= plan.target
            if runner.state == "stopped":
                assert plan.leases == {}
            for shard, lease in plan.leases.items():
                assert (lease.shard_id, lease.fence.holder) == (shard, runner.runner_id)
                if lease.deadline <= self.now:
                    continue
                row = self.table[shard]
                assert (row.holder, row.token) == (runner.runner_id, lease.token), (
                    f"{runner.runner_id} holds shard {shard} token {lease.token} until "
                    f"{lease.deadline} at {self.now}, the table says {row}"
                )
                assert row.expires_at is not None and row.expires_at >= lease.deadline
                assert shard not in working, f"shard {shard}: {working[shard]}, {runner.runner_id}"
                working[shard] = runner.runner_id


def test_a_cluster_of_plans_never_shares_a_shard_and_settles_fairly() -> None:
    run_state_machine_as_test(
        ClusterMachine,
        settings=settings(max_examples=200, stateful_step_count=50, deadline=None),
    )
