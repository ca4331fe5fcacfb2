"""The replay's simulated teams and navigators: what they do is a function of the event they
answer and the seed, never of the order or the moment answers arrive (no broker here)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from heart.agents.navigation.cases import Contact, schedule
from heart.agents.navigation.staffed import add_staffed_minutes
from heart.cli.main import REPLAY_SEED, build_parser
from heart.cli.replay import DEFAULT_SEED, NAVIGATOR_DELAY_MIN, Replayer
from heart.policy import Policy, load_policy
from heart.schemas.followup import FollowupOutcome
from heart.streams.settings import HeartSettings

POLICY = load_policy()
#: Tuesday 2024-03-12 14:00 in Durham: within CRT and Care Navigation hours.
T0 = datetime(2024, 3, 12, 18, 0, tzinfo=UTC)


def replayer(seed: int = DEFAULT_SEED, policy: Policy = POLICY) -> Replayer:
    return Replayer(HeartSettings(), policy, speed=None, seed=seed)


def agenda(r: Replayer) -> list[tuple[datetime, str, dict[str, Any]]]:
    """Both agendas, as comparable values, in event-time order."""
    items = [
        (at, spec.name, event.model_dump(mode="json"))
        for at, _, spec, _, event in (*r._team_agenda, *r._other_agenda)
    ]
    return sorted(items, key=lambda item: (item[0], item[1], str(item[2])))


def assigned(call: str, team: str, at: datetime) -> dict[str, Any]:
    return {
        "event_type": "dispatch.assigned",
        "call_id": call,
        "team_id": team,
        "route": "crt",
        "occurred_at": at.isoformat(),
    }


def test_teams_answer_the_same_whatever_order_assignments_arrive_in() -> None:
    answers = [assigned(f"C-{i}", f"CRT-{i % 3}", T0 + timedelta(minutes=7 * i)) for i in range(12)]
    forwards, backwards = replayer(), replayer()
    for data in answers:
        forwards._react(data)
    for data in reversed(answers):
        backwards._react(data)
    assert agenda(forwards) == agenda(backwards)
    assert forwards.stats.followups_planned == backwards.stats.followups_planned > 0
    # The seed is what the draws come from: another seed, other times.
    other = replayer(seed=DEFAULT_SEED + 1)
    for data in answers:
        other._react(data)
    assert agenda(other) != agenda(forwards)


def test_navigators_work_from_the_release_not_from_when_the_task_was_seen() -> None:
    # Friday 17:30 in Durham: Care Navigation is closed until Monday 08:30.
    ended = datetime(2024, 3, 15, 21, 30, tzinfo=UTC)
    r = replayer()
    r._plan_followup("C-1", "crt", ended, declined=False)
    case, _ = schedule(
        Contact(call_id="C-1", pilot="crt", ended_at=ended, source_event_id="x"), POLICY, ended
    )
    assert case is not None
    outcomes = [e for _, _, _, _, e in r._other_agenda if isinstance(e, FollowupOutcome)]
    assert outcomes, "a follow-up is worked"
    low, high = (timedelta(minutes=m) for m in NAVIGATOR_DELAY_MIN)
    assert case.release_at + low <= outcomes[0].occurred_at <= case.release_at + high
    before = agenda(r)
    # Care Navigation releasing the task (late, on its own timer) changes nothing planned.
    seen_late = ended + timedelta(days=5)
    r._react(
        {
            "event_type": "followup.due",
            "case_id": "C-1",
            "occurred_at": seen_late.isoformat(),
            "due_at": case.release_at.isoformat(),
        }
    )
    assert agenda(r) == before
    assert r.stats.followups_released == 1
    # A contact reported twice is followed up once.
    r._plan_followup("C-1", "crt", ended, declined=False)
    assert agenda(r) == before
    # A declined contact, or one of a pilot Care Navigation does not follow, gets none.
    r._plan_followup("C-2", "crt", ended, declined=True)
    r._plan_followup("C-3", "cor", ended, declined=False)
    assert agenda(r) == before


def test_a_retry_comes_after_care_navigation_would_release_it() -> None:
    ended = T0
    cn = POLICY.pilots.cn
    for i in range(200):
        r = replayer()
        r._plan_followup(f"C-{i}", "crt", ended, declined=False)
        outcomes = sorted(
            (e for _, _, _, _, e in r._other_agenda if isinstance(e, FollowupOutcome)),
            key=lambda e: e.occurred_at,
        )
        if len(outcomes) > 1:
            break
    else:
        raise AssertionError("no case in 200 needed a retry")
    assert outcomes[0].outcome == "unable_to_reach"
    assert len(outcomes) <= 1 + cn.unable_to_reach_retries
    assert all(o.outcome == "unable_to_reach" for o in outcomes[:-1])
    for first, second in itertools.pairwise(outcomes):
        released = add_staffed_minutes(first.occurred_at, cn.retry_after_minutes, POLICY)
        assert released + timedelta(minutes=NAVIGATOR_DELAY_MIN[0]) <= second.occurred_at


def test_phone_calls_close_and_are_followed_up_from_the_seed() -> None:
    from tests.factories import call_received

    call = call_received(call_id="P-1", occurred_at=T0)
    first, again = replayer(), replayer()
    first._closing(call)
    again._closing(call)
    assert agenda(first) == agenda(again)
    assert first.stats.followups_planned == 1  # CCD contacts are followed up under Durham's


def test_replay_seed_option_defaults_to_the_replayers_seed() -> None:
    args = build_parser().parse_args(["replay", "x.csv", "--mapping", "sanjose-2024"])
    assert args.seed == REPLAY_SEED == DEFAULT_SEED
    args = build_parser().parse_args(["replay", "x.csv", "--mapping", "m", "--seed", "7"])
    assert args.seed == 7
