"""The outbox: a batch's records reach the broker where and in the order sending them one
by one would have put them, and table writes queue the changelog record Faust would send."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import _current_event

from heart.streams.admin import create_topics
from heart.streams.app import HeartApp, create_app
from heart.streams.outbox import Outbox, current_outbox
from heart.streams.settings import HeartSettings
from heart.streams.stage import TableWriter, create_stage
from heart.streams.topics import CAD_CALLS, TRIAGE_CALLS
from tests.kafka import read_topic


@pytest.fixture
async def running(settings: HeartSettings, unique: str) -> AsyncIterator[tuple[HeartApp, Any]]:
    scoped = settings.model_copy(update={"topic_prefix": f"ob{unique}."})
    await create_topics(scoped)
    app = create_app(f"test-outbox-{unique}", scoped)
    await app.producer.start()
    try:
        yield app, scoped
    finally:
        await app.producer.stop()


async def test_keyed_records_go_where_the_partitioner_puts_their_keys_in_order(
    running: tuple[HeartApp, HeartSettings],
) -> None:
    app, scoped = running
    topic = CAD_CALLS.full_name(scoped.topic_prefix)
    outbox = Outbox(app)
    sent = [(f"call-{i % 10}".encode(), str(i).encode()) for i in range(60)]
    for key, value in sent:
        outbox.add(topic, key, value)
    assert len(outbox) == 60
    await outbox.flush()
    assert len(outbox) == 0
    await app.producer.flush()
    records = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 60, settle=0.3)
    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    partitions = list(range(CAD_CALLS.partitions))
    partitioner = DefaultPartitioner()
    for r in records:
        assert r.partition == partitioner(r.key, partitions, partitions)
    for key in {k for k, _ in sent}:
        mine = sorted((r for r in records if r.key == key), key=lambda r: r.offset)
        assert [int(r.value) for r in mine] == sorted(int(r.value) for r in mine)


async def test_consecutive_flushes_to_one_partition_keep_their_order(
    running: tuple[HeartApp, HeartSettings],
) -> None:
    app, scoped = running
    topic = CAD_CALLS.full_name(scoped.topic_prefix)
    outbox = Outbox(app)
    for first in (0, 5, 10):
        for i in range(first, first + 5):
            outbox.add(topic, b"k", str(i).encode(), partition=2)
        # No wait between flushes: the next one joins the partition's open batch.
        await outbox.flush()
    await app.producer.flush()
    records = await read_topic(scoped, CAD_CALLS, until=lambda r: len(r) >= 15, settle=0.3)
    assert {r.partition for r in records} == {2}
    ordered = sorted(records, key=lambda r: r.offset)
    assert [int(r.value) for r in ordered] == list(range(15))


def test_a_record_the_producer_would_refuse_is_refused_when_queued() -> None:
    app = create_app("test-outbox-size", HeartSettings())
    outbox = Outbox(app)
    too_big = b"x" * (app.conf.producer_max_request_size + 1)
    with pytest.raises(MessageSizeTooLargeError):
        outbox.add("some.topic", b"k", too_big)
    assert len(outbox) == 0


def test_discard_drops_what_was_queued() -> None:
    outbox = Outbox(create_app("test-outbox-discard", HeartSettings()))
    outbox.add("some.topic", b"k", b"v")
    outbox.discard()
    assert len(outbox) == 0


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic=CAD_CALLS.name, partition=partition)


def _handling(partition: int) -> Any:
    """Make a record of ``partition`` the event being handled, as the batch reader does;
    returns the contextvar token and the event (held: Faust keeps a weak reference)."""
    event = _Event(partition)
    return _current_event.set(weakref.ref(event)), event  # type: ignore[arg-type]


def _triage_table_in_batch() -> tuple[Any, Any, Outbox]:
    """The triage stage, its calls table and an outbox made the running task's, as the
    batch reader makes it."""
    stage = create_stage("triage", HeartSettings())
    outbox = Outbox(stage.app)
    outbox.activate()
    return stage, stage.table(TRIAGE_CALLS), outbox


async def test_table_writes_queue_the_changelog_record_faust_would_send() -> None:
    stage, table, outbox = _triage_table_in_batch()
    assert current_outbox() is outbox
    token, _event = _handling(3)
    try:
        stage.put(table, "D-1", {"route": "crt", "n": 1})
        stage.delete(table, "D-1")
        stage.delete(table, "never-written")
    finally:
        _current_event.reset(token)
    changelog = table.changelog_topic.get_topic_name()
    expected_key, _ = table.changelog_topic.prepare_key("D-1", table.key_serializer)
    expected_value, _ = table.changelog_topic.prepare_value(
        {"route": "crt", "n": 1}, table.value_serializer
    )
    queued = outbox._state
    assert queued == [
        (changelog, expected_key, expected_value, 3),
        (changelog, expected_key, None, 3),
    ], "a delete of a missing key sends nothing, as Faust's pop(key, None) does"
    assert outbox._outputs == [], "changelog records are state, held back behind outputs"
    assert orjson.loads(queued[0][2]) == {"route": "crt", "n": 1}
    assert "D-1" not in table.data


async def test_a_table_write_can_bring_its_value_encoded() -> None:
    stage, table, outbox = _triage_table_in_batch()
    token, _event = _handling(4)
    try:
        stage.put(table, "D-5", {"route": "crt"}, encoded=b'{"route":"crt"}')
    finally:
        _current_event.reset(token)
    [(_topic, _key, value, partition)] = outbox._state
    assert (value, partition) == (b'{"route":"crt"}', 4)
    assert table.data["D-5"] == {"route": "crt"}


async def test_a_table_write_outside_a_batch_goes_through_faust() -> None:
    stage = create_stage("triage", HeartSettings())
    table = stage.table(TRIAGE_CALLS)
    sent: list[tuple[Any, ...]] = []
    table.send_changelog = lambda *args, **kw: (
        sent.append(args)
        or SimpleNamespace(  # type: ignore[method-assign]
            message=SimpleNamespace(partition=args[0])
        )
    )
    token, _event = _handling(1)
    try:
        stage.put(table, "D-2", {"route": "police"})
    finally:
        _current_event.reset(token)
    assert table.data["D-2"] == {"route": "police"}
    assert sent == [(1, "D-2", {"route": "police"})]


async def test_reads_see_what_faust_reads() -> None:
    stage = create_stage("triage", HeartSettings())
    table = stage.table(TRIAGE_CALLS)
    writer = TableWriter(stage, table)
    table.send_changelog = lambda *args, **kw: SimpleNamespace(  # type: ignore[method-assign]
        message=SimpleNamespace(partition=args[0])
    )
    token, _event = _handling(2)
    try:
        stage.put(table, "D-3", {"route": "ccd"})
    finally:
        _current_event.reset(token)
    assert stage.get(table, "D-3") == table.get("D-3") == {"route": "ccd"}
    assert stage.get(table, "D-4") is None and table.get("D-4") is None
    assert writer.get("D-3") == {"route": "ccd"}
    assert writer.get("D-4", "absent") == "absent"


@pytest.mark.parametrize("outcome", ["written", "failed"])
async def test_state_goes_to_the_producer_only_once_the_outputs_are_done(outcome: str) -> None:
    outbox = Outbox(create_app("test-outbox-order", HeartSettings()))
    written: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    handed: list[list[str]] = []

    async def hand(records: list[Any]) -> list[asyncio.Future[Any]]:
        # Stands in for the producer: the first hand-over's delivery is ours to settle.
        handed.append([topic for topic, *_ in records])
        return [written] if len(handed) == 1 else []

    outbox._hand = hand  # type: ignore[method-assign]
    outbox.add("decisions", b"D-1", b"{}")
    outbox.add("calls-changelog", b'"D-1"', b"{}", 0, state=True)
    flushing = asyncio.ensure_future(outbox.flush())
    await asyncio.sleep(0.05)
    assert handed == [["decisions"]], "the state waits while the output is in flight"
    if outcome == "written":
        written.set_result(None)
    else:
        # A failed output is logged, as a lone send's is; the state still goes.
        written.set_exception(RuntimeError("broker refused"))
    await asyncio.wait_for(flushing, 5)
    assert handed == [["decisions"], ["calls-changelog"]]
    assert len(outbox) == 0


async def test_outputs_alone_do_not_wait_for_their_delivery() -> None:
    outbox = Outbox(create_app("test-outbox-nowait", HeartSettings()))
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def hand(records: list[Any]) -> list[asyncio.Future[Any]]:
        return [never]

    outbox._hand = hand  # type: ignore[method-assign]
    outbox.add("commands", b"area-1", b"{}")
    await asyncio.wait_for(outbox.flush(), 1)
    never.cancel()
