"""Faust's consumer fixes (``heart.streams.kafka.consumer``): no commit over a missing record,
records handed to a stream in order, holes and stalls re-read."""

from __future__ import annotations

from typing import Any

from heart.streams.app import create_app
from heart.streams.settings import HeartSettings


def _consumer_with(committed: int, acked: list[int], topic: str) -> tuple[Any, Any]:
    from faust.types import TP

    consumer = create_app("triage", HeartSettings(topic_prefix="hole.")).consumer
    tp = TP(topic, 0)
    consumer._committed_offset[tp] = committed
    consumer._acked[tp].extend(acked)
    consumer._acked_index[tp].update(acked)
    return consumer, tp


def test_no_commit_over_a_record_missing_at_the_committed_position() -> None:
    # docs/reliability.md, "Records lost around a rebalance": committed 84 is the next offset to
    # read; 84 never reached
    # the stream, 85 and 86 did. Faust's own check (min(acked) - committed > 1) commits 87.
    consumer, tp = _consumer_with(84, [85, 86], "hole.cad.calls")
    assert consumer._new_offset(tp) is None
    assert tp in consumer._holes
    # Once 84 is read again and acknowledged, the commit moves past all three.
    consumer._acked[tp].append(84)
    consumer._acked_index[tp].add(84)
    assert consumer._new_offset(tp) == 87
    assert tp not in consumer._holes


async def test_no_gap_is_filed_on_a_catalog_topic() -> None:
    consumer, tp = _consumer_with(10, [], "hole.cad.calls")
    await consumer._add_gap(tp, 11, 20)
    assert not consumer._gap[tp]
    # A changelog keeps Faust's gap handling (compaction leaves real gaps there).
    changelog, ctp = _consumer_with(10, [], "hole.heart-triage-calls-changelog")
    await changelog._add_gap(ctp, 12, 20)
    assert changelog._gap[ctp]


async def _drain(consumer: Any, scripted: list[tuple[Any, int]], monkeypatch: Any) -> list[int]:
    """What a stream gets from HeartConsumer.getmany over Faust's batch ``scripted``,
    reading as Faust's drain loop does (read offset set after each record), and the
    offsets the consumer seeked to, as negative numbers in the same list."""
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as faust_aiokafka

    async def batch(self: Any, timeout: float) -> Any:
        for tp, offset in scripted:
            yield tp, SimpleNamespace(offset=offset)

    seen: list[int] = []

    async def seek(tp: Any, offset: int) -> None:
        seen.append(-offset)
        consumer._read_offset[tp] = offset
        consumer._expected[tp] = offset

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", batch)
    monkeypatch.setattr(consumer, "seek", seek)
    async for tp, message in consumer.getmany(1.0):
        seen.append(message.offset)
        consumer._read_offset[tp] = message.offset
    return seen


async def test_a_record_ahead_of_a_missing_one_is_not_handed_on(monkeypatch: Any) -> None:
    # The dispatch chaos run that found it: 269-275 dropped around a rebalance, 276 next.
    consumer, tp = _consumer_with(0, [], "hole.heart.dispatch.commands")
    consumer._expected[tp] = 269
    otp = type(tp)("hole.units.status", 0)
    consumer._expected[otp] = 10
    seen = await _drain(consumer, [(tp, 276), (otp, 10), (tp, 277), (otp, 11)], monkeypatch)
    # Rewound to 269; 277 skipped with 276; the other partition goes on untouched.
    assert seen == [-269, 10, 11]


async def test_the_record_at_the_committed_offset_is_not_skipped_after_a_rebalance(
    monkeypatch: Any,
) -> None:
    # The dispatch chaos run in CI: committed 244 (the next offset to read), 245 fetched
    # first after the rebalance. Faust's read offset after the seek is 244, which made 245
    # look like the record after it.
    consumer, tp = _consumer_with(244, [], "hole.units.status")
    fresh = type(tp)("hole.cad.calls", 1)  # assigned, never committed: seeked to its start
    gone = type(tp)("hole.cad.calls", 2)  # revoked
    consumer._expected[gone] = 7
    monkeypatch.setattr(consumer, "assignment", lambda: {tp, fresh})
    consumer._expect_committed()
    assert consumer._expected == {tp: 244}
    seen = await _drain(consumer, [(tp, 245), (tp, 246)], monkeypatch)
    assert seen == [-244]
    # Read again from 244, in order, then on.
    assert await _drain(consumer, [(tp, 244), (tp, 245), (tp, 246)], monkeypatch) == [
        244,
        245,
        246,
    ]
    assert consumer._expected[tp] == 247


async def test_a_record_from_before_a_seek_forward_does_not_move_the_position_back(
    monkeypatch: Any,
) -> None:
    consumer, tp = _consumer_with(0, [], "hole.cad.calls")
    consumer._expected[tp] = 300
    # 250 is dropped here, as Faust's fetch loop would by its read offset (blind for
    # catalog partitions); it does not make 300 look ahead.
    assert await _drain(consumer, [(tp, 250), (tp, 300), (tp, 301)], monkeypatch) == [300, 301]


async def test_the_rewind_count_starts_again_once_the_missing_record_arrives(
    monkeypatch: Any,
) -> None:
    from heart.streams.kafka.consumer import ORDER_REWINDS_MAX

    consumer, tp = _consumer_with(0, [], "hole.cad.calls")
    # Separate holes at the same offset, each filled by a re-read, never add up to a
    # give-up that would hand a record on out of order.
    for _ in range(ORDER_REWINDS_MAX + 2):
        consumer._expected[tp] = 100
        assert await _drain(consumer, [(tp, 101)], monkeypatch) == [-100]
        assert await _drain(consumer, [(tp, 100), (tp, 101)], monkeypatch) == [100, 101]


async def test_a_changelog_keeps_fausts_order_handling(monkeypatch: Any) -> None:
    consumer, tp = _consumer_with(0, [], "hole.heart-triage-calls-changelog")
    consumer._read_offset[tp] = 5
    consumer._expected[tp] = 6
    assert await _drain(consumer, [(tp, 9), (tp, 10)], monkeypatch) == [9, 10]


async def test_records_gone_from_the_broker_are_given_up_after_some_rewinds(
    monkeypatch: Any,
) -> None:
    from heart.streams.kafka.consumer import ORDER_REWINDS_MAX

    consumer, tp = _consumer_with(0, [], "hole.cad.calls")
    rounds = []
    for _ in range(ORDER_REWINDS_MAX + 1):
        consumer._expected[tp] = 100
        rounds.append(await _drain(consumer, [(tp, 120)], monkeypatch))
    assert rounds[:-1] == [[-100]] * ORDER_REWINDS_MAX
    assert rounds[-1] == [120]


def _seeking_consumer(monkeypatch: Any, topic: str = "hole.cad.calls") -> tuple[Any, Any, list]:
    """A consumer whose seeks are recorded instead of sent to a fetcher, on a clock the
    test moves (``clock[0]``, seconds)."""
    import heart.streams.kafka.consumer as transport

    consumer, tp = _consumer_with(0, [], topic)
    seeks: list[tuple[Any, int]] = []

    async def _seek(partition: Any, offset: int) -> None:
        seeks.append((partition, offset))

    clock = [1000.0]
    monkeypatch.setattr(consumer, "_seek", _seek)
    monkeypatch.setattr(transport, "monotonic", lambda: clock[0])
    consumer.clock = clock
    return consumer, tp, seeks


async def test_a_seek_lowers_a_streams_position_and_never_raises_it(monkeypatch: Any) -> None:
    consumer, tp, seeks = _seeking_consumer(monkeypatch)
    await consumer.seek(tp, 40)  # a partition without a commit, started at its beginning
    assert consumer.stream_next[tp] == 40
    consumer.stream_next[tp] = 50  # the stream took up to 49
    await consumer.seek(tp, 60)  # the fetch's own order rewind, ahead of the queue
    assert consumer.stream_next[tp] == 50
    await consumer.seek(tp, 45)  # back to a hole at the committed offset
    assert consumer.stream_next[tp] == 45
    # A changelog's stream is none of this bookkeeping's business.
    changelog = type(tp)("hole.heart-triage-calls-changelog", 0)
    await consumer.seek(changelog, 3)
    assert changelog not in consumer.stream_next
    assert seeks == [(tp, 40), (tp, 60), (tp, 45), (changelog, 3)]


async def test_after_a_rebalance_each_stream_resumes_at_the_committed_offset(
    monkeypatch: Any,
) -> None:
    consumer, tp, _ = _seeking_consumer(monkeypatch)
    positions = consumer.stream_next  # the batch reader holds this very dict
    kept = type(tp)("hole.units.status", 2)
    gone = type(tp)("hole.units.status", 3)
    positions.update({tp: 90, kept: 7, gone: 12})
    consumer._committed_offset[tp] = 80  # another worker's last commit
    consumer._committed_offset[kept] = 7
    monkeypatch.setattr(consumer, "assignment", lambda: {tp, kept})
    consumer._expect_committed()
    assert consumer.stream_next is positions
    assert positions == {tp: 80, kept: 7}


async def test_a_stream_gap_rewinds_once_per_spacing_then_gives_up(monkeypatch: Any) -> None:
    from heart.streams.kafka.consumer import ORDER_REWINDS_MAX, STREAM_REWIND_SPACING_S

    consumer, tp, seeks = _seeking_consumer(monkeypatch)
    consumer.stream_next[tp] = 11
    assert await consumer.stream_gap(tp, 11, 12) is False
    assert seeks == [(tp, 11)]
    # The records queued behind the hole arrive next: no rewind for each of them.
    assert await consumer.stream_gap(tp, 11, 13) is False
    assert seeks == [(tp, 11)]
    for _ in range(ORDER_REWINDS_MAX - 1):
        consumer.clock[0] += STREAM_REWIND_SPACING_S
        assert await consumer.stream_gap(tp, 11, 12) is False
    assert seeks == [(tp, 11)] * ORDER_REWINDS_MAX
    # Still missing after as many re-reads: gone from the broker, so go on without it.
    consumer.clock[0] += STREAM_REWIND_SPACING_S
    assert await consumer.stream_gap(tp, 11, 12) is True
    assert len(seeks) == ORDER_REWINDS_MAX


async def test_holes_far_apart_in_time_each_get_their_own_rewinds(monkeypatch: Any) -> None:
    from heart.streams.kafka.consumer import ORDER_REWINDS_MAX, STREAM_REWIND_FORGET_S

    consumer, tp, seeks = _seeking_consumer(monkeypatch)
    for _ in range(ORDER_REWINDS_MAX + 2):
        consumer.clock[0] += STREAM_REWIND_FORGET_S + 1
        assert await consumer.stream_gap(tp, 11, 12) is False
    assert len(seeks) == ORDER_REWINDS_MAX + 2
    # A hole at another offset is a new one too.
    other = type(tp)("hole.cad.calls", 1)
    assert await consumer.stream_gap(other, 4, 9) is False
    assert seeks[-1] == (other, 4)


async def _fetch_loop(
    consumer: Any, scripted: list[tuple[Any, int]], monkeypatch: Any, during: Any = None
) -> list[int]:
    """The offsets Faust's fetch loop (``Consumer._drain_messages``) hands to the streams
    from HeartConsumer.getmany over ``scripted``, with its read-offset check and update;
    ``during(offset)`` runs while a record is being handed over."""
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as faust_aiokafka

    async def batch(self: Any, timeout: float) -> Any:
        for tp, offset in scripted:
            yield tp, SimpleNamespace(offset=offset)

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", batch)
    handed: list[int] = []
    async for tp, message in consumer.getmany(1.0):
        read = consumer._read_offset[tp]
        if read is None or message.offset >= read:
            handed.append(message.offset)
            if during is not None:
                await during(message.offset)
            consumer._read_offset[tp] = message.offset
    return handed


async def test_a_seek_while_a_record_is_handed_over_is_not_undone(monkeypatch: Any) -> None:
    # Bug 20, the chaos run that found it: the stream asked to re-read triage.decisions[1]
    # from 11 while the fetch loop was handing over 14, fetched before the seek. Faust's
    # loop then set its read offset to 14 and dropped 11-14 when they came again, at
    # every re-read, until a rebalance: the calls behind them were never dispatched.
    consumer, tp, seeks = _seeking_consumer(monkeypatch, "hole.triage.decisions")
    consumer._expected[tp] = 14

    async def stream_asks_for_11(offset: int) -> None:
        await consumer.seek(tp, 11)

    assert await _fetch_loop(consumer, [(tp, 14)], monkeypatch, stream_asks_for_11) == [14]
    assert seeks == [(tp, 11)]
    assert await _fetch_loop(consumer, [(tp, o) for o in (11, 12, 13, 14, 15)], monkeypatch) == [
        11,
        12,
        13,
        14,
        15,
    ]


async def test_a_changelog_keeps_fausts_read_offset(monkeypatch: Any) -> None:
    consumer, tp, _ = _seeking_consumer(monkeypatch, "hole.heart-triage-calls-changelog")
    consumer._read_offset[tp] = 14
    assert await _fetch_loop(consumer, [(tp, 12), (tp, 14), (tp, 15)], monkeypatch) == [14, 15]


async def test_a_partition_whose_stream_takes_nothing_while_the_rest_move_on_is_re_read(
    monkeypatch: Any,
) -> None:
    # Bug 20, a chaos run: after a rebalance triage.decisions[5] delivered nothing from its
    # committed offset 24 on, while the topic's other partitions went on, and the calls
    # behind it were never dispatched. Nothing after the lost records showed the hole.
    from heart.streams.kafka.consumer import STALL_REWIND_AFTER_S

    consumer, stuck, seeks = _seeking_consumer(monkeypatch, "hole.triage.decisions")
    other = type(stuck)("hole.triage.decisions", 1)
    quiet = type(stuck)("hole.triage.decisions", 2)  # its log holds nothing past 7
    highwaters = {stuck: 40, other: 90, quiet: 7}
    monkeypatch.setattr(consumer, "assignment", lambda: {stuck, other, quiet})
    monkeypatch.setattr(consumer, "highwater", highwaters.get)
    consumer.stream_next.update({stuck: 24, other: 50, quiet: 7})
    t0 = consumer.clock[0]
    assert consumer.stalled(t0) == []
    consumer.stream_next[other] = 60
    assert consumer.stalled(t0 + STALL_REWIND_AFTER_S / 2) == []
    consumer.stream_next[other] = 70
    assert consumer.stalled(t0 + STALL_REWIND_AFTER_S) == [(stuck, 24)]
    # Once per stall period, not at every commit.
    assert consumer.stalled(t0 + STALL_REWIND_AFTER_S + 1) == []
    # Re-read, it moves on and is no longer stalled.
    consumer.stream_next[stuck] = 30
    consumer.stream_next[other] = 90  # caught up with its log
    assert consumer.stalled(t0 + 3 * STALL_REWIND_AFTER_S) == []
    consumer.clock[0] = t0 + 3 * STALL_REWIND_AFTER_S
    monkeypatch.setattr(consumer.app, "rebalancing", False, raising=False)
    consumer.flow_active = True
    await consumer._rewind_stalled()
    assert seeks == []


async def test_a_whole_stream_waiting_is_not_a_stall(monkeypatch: Any) -> None:
    # A stage paused (its breaker open, or busy with a long batch) takes nothing from any
    # partition: no re-read, however long it lasts.
    from heart.streams.kafka.consumer import STALL_REWIND_AFTER_S

    consumer, tp, _ = _seeking_consumer(monkeypatch, "hole.triage.decisions")
    other = type(tp)("hole.triage.decisions", 1)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp, other})
    monkeypatch.setattr(consumer, "highwater", lambda _tp: 1000)
    consumer.stream_next.update({tp: 24, other: 50})
    t0 = consumer.clock[0]
    assert consumer.stalled(t0) == []
    assert consumer.stalled(t0 + 10 * STALL_REWIND_AFTER_S) == []


async def test_a_rebalance_starts_the_stall_periods_again(monkeypatch: Any) -> None:
    # Every stream stands still while the group rebalances; a partition must not count as
    # stalled the moment it resumes, before anything could be fetched for it.
    from heart.streams.kafka.consumer import STALL_REWIND_AFTER_S

    consumer, tp, _ = _seeking_consumer(monkeypatch, "hole.triage.decisions")
    other = type(tp)("hole.triage.decisions", 1)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp, other})
    monkeypatch.setattr(consumer, "highwater", lambda _tp: 1000)
    consumer.stream_next.update({tp: 13, other: 50})
    t0 = consumer.clock[0]
    assert consumer.stalled(t0) == []
    # The rebalance: each stream resumes at its committed offset.
    consumer._committed_offset.update({tp: 13, other: 40})
    consumer._expect_committed()
    t1 = t0 + 2 * STALL_REWIND_AFTER_S
    assert consumer.stalled(t1) == []
    consumer.stream_next[other] = 45
    assert consumer.stalled(t1 + 1) == []
    consumer.stream_next[other] = 48
    assert consumer.stalled(t1 + STALL_REWIND_AFTER_S) == [(tp, 13)]


async def test_records_emptied_with_the_stream_queues_are_read_again(monkeypatch: Any) -> None:
    # Bug 20, the chaos runs that found it: after a rebalance the fetcher handed
    # units.status[0] 69-116 over while the consumer was still looking up where new
    # partitions start; Faust then resumed its flow control, which empties the stream
    # queues, and nothing after 116 came to show the hole.
    consumer, tp, _ = _seeking_consumer(monkeypatch, "hole.units.status")
    caught_up = type(tp)("hole.units.status", 1)
    revoked = type(tp)("hole.units.status", 2)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp, caught_up})
    monkeypatch.setattr(consumer.app, "rebalancing", False, raising=False)
    consumer.flow_active = True
    consumer.stream_next.update({tp: 69, caught_up: 40, revoked: 5})
    consumer._expected.update({tp: 117, caught_up: 40, revoked: 9})
    # Nothing emptied yet: records on their way to a stream are not read twice.
    assert await _drain(consumer, [], monkeypatch) == []

    consumer.app.flow_control.resume()  # what Faust calls when recovery ends
    assert await _drain(consumer, [(tp, o) for o in (69, 70)], monkeypatch) == [-69, 69, 70]
    # Once per emptying.
    assert await _drain(consumer, [(tp, 71)], monkeypatch) == [71]


async def test_queues_emptied_during_a_rebalance_are_re_read_once_it_is_over(
    monkeypatch: Any,
) -> None:
    consumer, tp, _ = _seeking_consumer(monkeypatch, "hole.units.status")
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(consumer.app, "rebalancing", True, raising=False)
    consumer.flow_active = True
    consumer.stream_next[tp] = 10
    consumer._expected[tp] = 12
    consumer.app.flow_control.clear()
    assert await _drain(consumer, [], monkeypatch) == []
    monkeypatch.setattr(consumer.app, "rebalancing", False, raising=False)
    assert await _drain(consumer, [], monkeypatch) == [-10]


def _aiokafka_positions(consumer: Any, monkeypatch: Any, positions: dict) -> None:
    """Make aiokafka's consumed position of each partition in ``positions`` what it says."""
    from types import SimpleNamespace

    states = {tp: SimpleNamespace(_position=offset) for tp, offset in positions.items()}
    assignment = SimpleNamespace(state_value=states.get)
    subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    thread = SimpleNamespace(_consumer=SimpleNamespace(_subscription=subscription))
    monkeypatch.setattr(consumer, "_thread", thread)


async def test_records_faust_fetched_and_dropped_are_read_again(monkeypatch: Any) -> None:
    # Bug 20, a chaos run: after a rebalance aiokafka had handed out triage.decisions[0]
    # up to 33 while the stream stayed at the committed 17 for 80 s; Faust's getmany drops
    # the rest of a batch when the generation changes or flow stops, before this consumer
    # sees it, and no later record came to show the hole.
    consumer, tp = _consumer_with(0, [], "hole.triage.decisions")
    other = type(tp)("hole.triage.decisions", 1)
    monkeypatch.setattr(consumer.app, "rebalancing", False, raising=False)
    consumer.flow_active = True
    consumer._expected.update({tp: 17, other: 40})
    _aiokafka_positions(consumer, monkeypatch, {tp: 34, other: 42})
    # other's 40 and 41 pass through; tp's 17-33 never reach this consumer.
    assert await _drain(consumer, [(other, 40), (other, 41)], monkeypatch) == [40, 41, -17]
    # All handed over: nothing to re-read.
    _aiokafka_positions(consumer, monkeypatch, {tp: 17, other: 42})
    assert await _drain(consumer, [], monkeypatch) == []


async def test_no_fetch_re_read_while_the_group_rebalances(monkeypatch: Any) -> None:
    # The rebalance's own seek to the committed offsets takes care of those records.
    consumer, tp = _consumer_with(0, [], "hole.triage.decisions")
    monkeypatch.setattr(consumer.app, "rebalancing", True, raising=False)
    consumer.flow_active = True
    consumer._expected[tp] = 17
    _aiokafka_positions(consumer, monkeypatch, {tp: 34})
    assert await _drain(consumer, [], monkeypatch) == []


def test_a_stall_warning_says_where_the_records_stand(monkeypatch: Any) -> None:
    from types import SimpleNamespace

    consumer, tp = _consumer_with(0, [], "hole.triage.decisions")
    consumer._active_partitions = {tp}
    state = SimpleNamespace(_position=35, highwater=35, paused=False, awaiting_reset=False)
    assignment = SimpleNamespace(state_value={tp: state}.get)
    client = SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)),
        _fetcher=SimpleNamespace(_records={}),
    )
    monkeypatch.setattr(consumer, "_thread", SimpleNamespace(_consumer=client))
    assert consumer.fetch_state(tp) == "active, aiokafka position 35 highwater 35"
    consumer._active_partitions = set()
    consumer._buffered_partitions = {tp}
    state.paused = True
    assert consumer.fetch_state(tp) == (
        "inactive, buffer-full, aiokafka position 35 highwater 35, aiokafka paused"
    )
    assert consumer.fetch_state(type(tp)("hole.triage.decisions", 9)).endswith(
        "not in aiokafka's assignment"
    )
