"""Faust's consumer, fixed for what goes wrong on any Kafka: records skipped and committed
over around a rebalance (faust-streaming #216, #221, #606), stream queues emptied at the end
of recovery, commits refused in silence; and its worker consumer tuned from the settings.

What only the embedded broker needs (the backlog fetch wait, end-offset correction) is
asked of :mod:`heart.streams.embedded`, which does nothing on Apache Kafka.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from time import monotonic
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

from heart.streams import embedded
from heart.streams.kafka.delivery import FirstInPlace
from heart.streams.kafka.explicit_topics import use_explicit_topics
from heart.streams.settings import HeartSettings

log = logging.getLogger(__name__)


class HeartConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait, true end offsets and a
    warning for a refused commit, whose worker consumer never asks the broker to
    auto-create a topic."""

    @property
    def heart_settings(self) -> HeartSettings:
        settings = getattr(self.app, "heart_settings", None)
        if not isinstance(settings, HeartSettings):
            raise TypeError(
                "HeartTransport needs an app with a 'heart_settings' attribute; "
                "create the app as heart.streams.app.HeartApp"
            )
        return settings

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka copies this into its Fetcher only in start(), which Faust calls after
        # this returns, so patching the unstarted consumer keeps every other option
        # Faust chose without copying its kwargs here.
        if consumer._fetcher is not None:
            raise RuntimeError("Faust started the worker consumer before it was tuned")
        consumer._fetch_max_wait_ms = self.heart_settings.fetch_wait_ms
        # Faust leaves aiokafka's 50 MiB per response; the bound on what a worker behind
        # holds fetched ahead is a setting.
        consumer._fetch_max_bytes = self.heart_settings.consumer_max_response_bytes
        # Its metadata requests name the subscribed topics and changelogs: after the
        # broker lost them, they must wait for the catalog, not be auto-created.
        use_explicit_topics(consumer._client)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        settings = self.heart_settings
        embedded.tune_fetch_wait(
            self._ensure_consumer(), settings, idle_wait_ms=settings.fetch_wait_ms
        )

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        committed = await super()._commit(offsets)
        if not committed and offsets:
            # Faust drops this case silently; a commit that never lands means a
            # rebalance re-reads everything since the last one that did.
            log.warning(
                "commit of %d partition offsets refused: the group rebalanced", len(offsets)
            )
        return committed

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        settings = self.heart_settings
        # In a transaction Faust already uses the last stable offset, not end_offsets().
        if self.consumer.in_transaction:
            return reported
        return await embedded.end_offsets(settings, partitions, reported)


class StreamFlowControl(FlowControlEvent):
    """Faust's flow control of the stream queues, telling listeners when it empties them.

    Faust empties every stream's queue when it resumes flow control at the end of a
    rebalance's recovery, after the streams' positions were set and while the fetcher is
    already handing records over (table recovery resumed it to read the changelogs).
    What it hands over in between is gone without a trace, and when nothing follows it in
    its partition no stream ever sees the hole (``docs/reliability.md``, "Records lost around a
    rebalance").
    :class:`HeartConsumer` listens, to re-read from each stream's position.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_clear: list[Callable[[], None]] = []

    def on_clear(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the stream queues are emptied."""
        self._on_clear.append(callback)

    def clear(self) -> None:
        super().clear()
        for callback in self._on_clear:
            callback()


#: How long a hole at the head of a partition's acknowledged offsets may last before the
#: partition is rewound to re-read it. Acks arrive in offset order within a partition, so a
#: hole is a record the stream never got; the grace only rides out a batch in flight.
HOLE_REWIND_AFTER_S = 3.0
#: Re-reads of the same missing offset before a partition is let go on without it.
ORDER_REWINDS_MAX = 5
#: How long after a stream asked to re-read a missing record it waits before asking again:
#: records fetched before the seek are still on their way through Faust's queues, and each
#: of them would otherwise rewind the partition once more.
STREAM_REWIND_SPACING_S = 1.0
#: A stream's re-reads of the same offset further apart than this count as a new hole.
STREAM_REWIND_FORGET_S = 10 * STREAM_REWIND_SPACING_S
#: How long a catalog partition's stream may take nothing, while the log holds records past
#: its position and its stream takes records of the topic's other partitions, before the
#: partition is re-read from that position.
STALL_REWIND_AFTER_S = 5.0


class _ReadOffsets(defaultdict[TP, int | None]):
    """Faust's per-partition read offsets, which its fetch loop drops every record at or
    below of (``Consumer._drain_messages``), blind for catalog partitions.

    The loop sets a partition's read offset after each record it hands over. A seek from
    another task (a stream asking for a missing record, the hole rewind) while the loop
    waits to hand over a record fetched before it is overwritten when that hand-over ends,
    and the loop then drops every record re-read below it: the missing record never came
    back. For catalog partitions ``HeartConsumer.getmany`` keeps the order and
    drops what came before instead, from a position the seek sets after the loop's last
    update, never before it.
    """

    def __init__(self, is_catalog: Callable[[TP], bool]) -> None:
        super().__init__(lambda: None)
        self._is_catalog = is_catalog

    def __getitem__(self, tp: TP) -> int | None:
        if self._is_catalog(tp):
            return None
        return super().__getitem__(tp)


def _tp_list(items: Iterable[tuple[TP, int | None]]) -> str:
    return ", ".join(
        f"{tp.topic}[{tp.partition}]" + ("" if offset is None else f"@{offset}")
        for tp, offset in sorted(items, key=lambda item: (item[0].topic, item[0].partition))
    )


class HeartConsumer(FirstInPlace, faust_aiokafka.Consumer):
    """Faust's consumer, never committing past a record its streams did not process.

    faust-streaming 0.15.3 can hand a stream the records after a rebalance without the one
    at the committed position (records fetched around the rebalance are dropped, or a
    partition that never had a commit keeps its pre-rebalance fetch position), and
    ``Consumer._new_offset`` then commits over the hole: its head check is
    ``min(acked) - committed > 1``, but ``_committed_offset[tp]`` is already the *next*
    offset to read, so a single missing record there is committed over (faust-streaming
    #216, #221, #606). ``_add_gap`` makes it worse: it files every offset jump as a gap to
    commit over, which is right for compacted or transactional topics only.

    On catalog topics (neither compacted nor transactional, so an offset jump can only be
    a skipped record) this consumer:

    * commits nothing while the lowest acknowledged offset is above the committed one;
    * never hands a stream a record ahead of one it has not read: it rewinds the
      partition to the missing one instead (:meth:`getmany`);
    * records no gaps, and logs the jump instead;
    * starts a partition that has no committed offset at its first offset, so the
      committed position is always known;
    * keeps, per partition, the offset its stream must take next (:attr:`stream_next`),
      for :func:`heart.streams.drain.event_batches` to hold back a record that reaches the
      stream ahead of one dropped between the fetch and the stream, and to have the
      missing one re-read at once (:meth:`stream_gap`);
    * rewinds a partition stuck on such a hole to its committed offset, so the skipped
      record is read again without waiting for the next rebalance (the stages
      de-duplicate on ``event_id``, so what is read twice is applied once);
    * re-reads from each stream's position what Faust empties from the stream queues
      when a rebalance ends (:class:`StreamFlowControl`);
    * re-reads, as a last resort, a partition whose stream takes nothing while the log
      holds more and the topic's other partitions move on (:meth:`stalled`), with the
      fetch state in the warning.

    Changelog and other internal topics keep Faust's behaviour.

    The fetcher hands a record to the streams without making tasks when the hand-over
    does not wait (:mod:`heart.streams.kafka.delivery`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _ReadOffsets(self._is_catalog_tp)
        # tp -> (committed offset the hole starts at, when it was first seen or rewound).
        self._holes: dict[TP, tuple[int, float]] = {}
        self._catalog_names: frozenset[str] | None = None
        # tp -> (offset last rewound to for order, how many times in a row).
        self._order_rewinds: dict[TP, tuple[int, int]] = {}
        # tp -> the offset a catalog partition's stream must get next. Faust's
        # _read_offset cannot say: it holds the next offset after a seek but the last one
        # read after a record, so a record one past a missing one looks in order.
        self._expected: dict[TP, int] = {}
        #: tp -> the offset a catalog partition's stream must take next: the committed one
        #: after a rebalance, lowered by a seek, advanced by each record the stream takes
        #: (streams.drain). Updated in place: the batch reader keeps a reference.
        self.stream_next: dict[TP, int] = {}
        # tp -> (offset a stream asked to re-read, how many times in a row, when last).
        self._stream_rewinds: dict[TP, tuple[int, int, float]] = {}
        # tp -> (its stream's position, since when); topic -> when a stream last moved on.
        self._positions_seen: dict[TP, tuple[int, float]] = {}
        self._topic_moved: dict[str, float] = {}
        # Set when Faust empties the stream queues; getmany then re-reads what was in them.
        self._queues_emptied = False
        flow_control = getattr(self.app, "flow_control", None)
        if isinstance(flow_control, StreamFlowControl):
            flow_control.on_clear(self._on_queues_emptied)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's batches, never handing a stream a catalog record out of order.

        When records of a partition were dropped around a rebalance (see the class
        docstring), the next one fetched would reach the stream ahead of them, and the
        dropped ones only when re-read later: a dispatch area would apply a team's later
        report before its earlier one and refuse it. Instead the partition is rewound to
        the first record not yet read, and the rest of the batch for it is skipped.
        """
        if self._queues_emptied and self.flow_active and not self.app.rebalancing:
            self._queues_emptied = False
            await self._reread_emptied_queues()
        rewound: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if tp in rewound:
                continue
            if self._is_catalog_tp(tp):
                expected = self._expected.get(tp)
                if expected is not None:
                    if message.offset < expected:
                        # Handed on already, or from before a seek forward: what Faust's
                        # fetch loop drops by its read offset, which is blind here.
                        continue
                    if message.offset > expected and self._rewind_for_order(
                        tp, expected, message.offset
                    ):
                        rewound.add(tp)
                        await self.seek(tp, expected)
                        continue
                    if message.offset == expected and tp in self._order_rewinds:
                        # The missing record arrived: a later rewind starts a new count.
                        del self._order_rewinds[tp]
                    # Set before the record is handed over, so that a seek made while the
                    # hand-over waits (a full stream queue) is not undone after it.
                    self._expected[tp] = message.offset + 1
            yield tp, message
        if self._expected and self.flow_active and not self.app.rebalancing:
            await self._reread_dropped_in_fetch()

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._expected[partition] = offset
        if self._is_catalog_tp(partition):
            # Lowered only: a seek for the fetch's order (getmany) goes to where the fetch
            # is, which can be ahead of the records still queued for the stream.
            taken = self.stream_next.get(partition)
            self.stream_next[partition] = offset if taken is None else min(taken, offset)

    def _aiokafka_consumer(self) -> Any:
        """The thread's aiokafka consumer, or None before it starts."""
        thread = self._thread
        return thread._consumer if thread is not None else None

    def _aiokafka_assignment(self) -> Any:
        """aiokafka's partition states (position, pause, high watermark), or None before
        it has an assignment."""
        consumer = self._aiokafka_consumer()
        subscription = None if consumer is None else consumer._subscription.subscription
        return None if subscription is None else subscription.assignment

    async def _reread_dropped_in_fetch(self) -> None:
        """Re-read what Faust's own ``getmany`` took from aiokafka and dropped before it
        reached this one: the rest of a batch when the generation changes or flow stops
        mid-batch, or the records of a partition paused since the fetch. aiokafka has
        moved past them and nothing after them may come to show the hole."""
        assignment = self._aiokafka_assignment()
        if assignment is None:
            return
        # A copy: the seek below updates the map.
        for tp, handed in list(self._expected.items()):
            state = assignment.state_value(tp)
            consumed = None if state is None else state._position
            if consumed is None or consumed <= handed:
                continue
            log.warning(
                "%s[%d]: offsets %d-%d were fetched and dropped before reaching the stream; "
                "re-reading from %d",
                tp.topic,
                tp.partition,
                handed,
                consumed - 1,
                handed,
            )
            await self.seek(tp, handed)

    def _on_queues_emptied(self) -> None:
        self._queues_emptied = True

    async def _reread_emptied_queues(self) -> None:
        """Re-read each catalog partition from its stream's position when records past it
        were handed over before Faust emptied the stream queues (:class:`StreamFlowControl`)."""
        assigned = self.assignment()
        for tp, position in list(self.stream_next.items()):
            handed = self._expected.get(tp)
            if tp not in assigned or handed is None or handed <= position:
                continue
            log.warning(
                "%s[%d]: offsets %d-%d were handed to the stream and emptied with its queue "
                "when the rebalance ended; re-reading from %d",
                tp.topic,
                tp.partition,
                position,
                handed - 1,
                position,
            )
            await self.seek(tp, position)

    async def stream_gap(self, tp: TP, missing: int, got: int) -> bool:
        """The stream of ``tp`` got ``got`` where it must take ``missing`` next: the records
        in between were fetched and dropped on the way (around a rebalance, or Faust's
        fetcher cancelling a hand-over when flow control is suspended). Handed on, ``got``
        would reach the stage ahead of them, and a dispatch area would refuse a team's
        report that comes before its assignment.

        Rewinds the partition to ``missing`` (not again for the records already queued
        behind the hole, which arrive within :data:`STREAM_REWIND_SPACING_S`) and returns
        False: the stream drops ``got`` unacked and gets it again after the missing ones.
        True, to go on without them, only after :data:`ORDER_REWINDS_MAX` re-reads never
        brought them back (gone from the broker: retention).
        """
        now = monotonic()
        last = self._stream_rewinds.get(tp)
        if last is not None and last[0] == missing:
            _, times, when = last
            if now - when < STREAM_REWIND_SPACING_S:
                return False
            times = 1 if now - when > STREAM_REWIND_FORGET_S else times + 1
        else:
            times = 1
        if times > ORDER_REWINDS_MAX:
            log.error(
                "%s[%d]: offsets %d-%d never reached the stream after %d re-reads; "
                "going on from %d",
                tp.topic,
                tp.partition,
                missing,
                got - 1,
                ORDER_REWINDS_MAX,
                got,
            )
            del self._stream_rewinds[tp]
            return True
        self._stream_rewinds[tp] = (missing, times, now)
        log.warning(
            "%s[%d]: the stream got offset %d before %d-%d; re-reading from %d",
            tp.topic,
            tp.partition,
            got,
            missing,
            got - 1,
            missing,
        )
        await self.seek(tp, missing)
        return False

    def _expect_committed(self) -> None:
        """After a rebalance, each catalog partition's stream resumes at its committed
        offset (the next one to read); one without a commit has none yet."""
        assigned = self.assignment()
        self._expected = {
            tp: offset
            for tp in assigned
            if self._is_catalog_tp(tp) and (offset := self._committed_offset.get(tp))
        }
        self.stream_next.clear()
        self.stream_next.update(self._expected)
        self._stream_rewinds.clear()
        # A rebalance stops every stream for a while: stall periods start again after it.
        self._positions_seen.clear()
        self._topic_moved.clear()

    def _rewind_for_order(self, tp: TP, missing: int, got: int) -> bool:
        """Whether to rewind ``tp`` to ``missing``; not again and again for the same
        offset, which would mean the records are gone from the broker (retention)."""
        offset, times = self._order_rewinds.get(tp, (missing, 0))
        times = times + 1 if offset == missing else 1
        self._order_rewinds[tp] = (missing, times)
        if times > ORDER_REWINDS_MAX:
            log.error(
                "%s[%d]: offsets %d-%d never arrive after %d re-reads; going on from %d",
                tp.topic,
                tp.partition,
                missing,
                got - 1,
                ORDER_REWINDS_MAX,
                got,
            )
            return False
        log.warning(
            "%s[%d]: offset %d came before %d-%d; re-reading from %d to keep the order",
            tp.topic,
            tp.partition,
            got,
            missing,
            got - 1,
            missing,
        )
        return True

    def _new_consumer_thread(self) -> HeartConsumerThread:
        return HeartConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _is_catalog_tp(self, tp: TP) -> bool:
        names = self._catalog_names
        if names is None:
            from heart.streams.topics import CATALOG

            settings = getattr(self.app, "heart_settings", None)
            prefix = settings.topic_prefix if isinstance(settings, HeartSettings) else ""
            names = self._catalog_names = frozenset(
                spec.full_name(prefix) for spec in CATALOG.values()
            )
        return tp.topic in names

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self._expect_committed()
        # Faust keeps no committed position for a partition without a commit (nor for a
        # commit of 0), and aiokafka then leaves the fetch position wherever it was, which
        # can be past records fetched and dropped around a rebalance. Start such a
        # partition at its first offset, as auto_offset_reset=earliest means, and remember
        # that as its committed position so _new_offset can see a hole at the head.
        unknown = [
            tp
            for tp in self.assignment()
            if self._is_catalog_tp(tp) and not self._committed_offset.get(tp)
        ]
        log.info(
            "streams resume at committed offsets %s; without a commit: %s",
            _tp_list(self._expected.items()),
            _tp_list((tp, None) for tp in unknown) or "none",
        )
        if not unknown:
            return
        try:
            beginnings = await self.earliest_offsets(*unknown)
        except Exception as exc:  # the broker is going away; the next rebalance retries
            log.warning("could not look up the first offsets of new partitions: %r", exc)
            return
        for tp in unknown:
            start = int(beginnings.get(tp) or 0)
            await self.seek(tp, start)
            self._committed_offset[tp] = start

    def _new_offset(self, tp: TP) -> int | None:
        if not self._is_catalog_tp(tp):
            return super()._new_offset(tp)
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if not acked:
            return None
        if committed is None:
            # perform_seek gives every assigned catalog partition a position; without one
            # there is no telling whether the first acknowledged record follows it.
            return None
        acked.sort()
        if acked[0] < committed:
            # Acknowledged again after the commit passed them (a replay): nothing to add.
            stale = [offset for offset in acked if offset < committed]
            del acked[: len(stale)]
            self._acked_index[tp].difference_update(stale)
            if not acked:
                return None
        if acked[0] > committed:
            if tp not in self._holes:
                self._holes[tp] = (committed, monotonic())
                log.warning(
                    "%s[%d]: record at offset %d was not processed but %d was; "
                    "holding the commit there until it is read again",
                    tp.topic,
                    tp.partition,
                    committed,
                    acked[0],
                )
            return None
        self._holes.pop(tp, None)
        return super()._new_offset(tp)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if not self._is_catalog_tp(tp):
            await super()._add_gap(tp, offset_from, offset_to)
            return
        # offset_to is the record just read; offset_from..offset_to-1 were never seen.
        log.warning(
            "%s[%d]: offsets jumped from %d to %d within the partition; "
            "not committing past the skipped records",
            tp.topic,
            tp.partition,
            offset_from - 1,
            offset_to,
        )

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        did_commit = await super().commit(topics, start_new_transaction=start_new_transaction)
        await self._rewind_holes()
        await self._rewind_stalled()
        return did_commit

    def stalled(self, now: float) -> list[tuple[TP, int]]:
        """Catalog partitions whose stream has taken nothing for
        :data:`STALL_REWIND_AFTER_S` although the log holds records past its position and
        the stream took records of the same topic's other partitions since: records
        fetched and lost before the stream with nothing after them to show the
        hole. Each is listed with the position to re-read from, once per stall period."""
        seen = self._positions_seen
        moved = self._topic_moved
        assigned = self.assignment()
        current = {tp: pos for tp, pos in self.stream_next.items() if tp in assigned}
        for tp in list(seen):
            if tp not in current:
                del seen[tp]
        for tp, position in current.items():
            last = seen.get(tp)
            if last is None or last[0] != position:
                seen[tp] = (position, now)
                if last is not None:
                    moved[tp.topic] = now
        due: list[tuple[TP, int]] = []
        for tp, (position, since) in seen.items():
            if now - since < STALL_REWIND_AFTER_S or moved.get(tp.topic, 0.0) <= since:
                continue
            try:
                highwater = self.highwater(tp)
            except AssertionError:  # aiokafka's answer for a partition no longer assigned
                continue
            if highwater is None or highwater <= position:
                continue
            due.append((tp, position))
            seen[tp] = (position, now)
        return due

    async def _rewind_stalled(self) -> None:
        if not self.flow_active or self.app.rebalancing:
            return
        for tp, position in self.stalled(monotonic()):
            log.warning(
                "%s[%d]: no record reached the stream for %.0fs although the log holds "
                "more; re-reading from offset %d (fetch state: %s)",
                tp.topic,
                tp.partition,
                STALL_REWIND_AFTER_S,
                position,
                self._describe_fetch(tp),
            )
            await self.seek(tp, position)

    def _describe_fetch(self, tp: TP) -> str:
        try:
            return self.fetch_state(tp)
        except Exception as exc:  # a diagnostic must not stop the commit that runs it
            return f"unknown ({exc!r})"

    def fetch_state(self, tp: TP) -> str:
        """Where a partition's records stand between the broker and its stream: Faust's
        fetch sets (active, paused, held back for a full stream buffer) and aiokafka's
        position, pause flag and buffered fetch, for a stall's warning."""
        parts = [
            "active" if tp in (self._active_partitions or ()) else "inactive",
        ]
        if tp in self._paused_partitions:
            parts.append("paused")
        if tp in self._buffered_partitions:
            parts.append("buffer-full")
        assignment = self._aiokafka_assignment()
        state = None if assignment is None else assignment.state_value(tp)
        if state is None:
            parts.append("not in aiokafka's assignment")
        else:
            parts.append(f"aiokafka position {state._position} highwater {state.highwater}")
            if state.paused:
                parts.append("aiokafka paused")
            if state.awaiting_reset:
                parts.append("awaiting reset")
        consumer = self._aiokafka_consumer()
        pending = None if consumer is None else consumer._fetcher._records.get(tp)
        if pending is not None:
            parts.append(f"fetched and not taken: {type(pending).__name__}")
        return ", ".join(parts)

    async def _rewind_holes(self) -> None:
        if not self._holes or not self.flow_active or self.app.rebalancing:
            return
        assigned = self.assignment()
        now = monotonic()
        for tp, (offset, since) in list(self._holes.items()):
            if tp not in assigned or self._committed_offset.get(tp) != offset:
                self._holes.pop(tp, None)
                continue
            if now - since < HOLE_REWIND_AFTER_S:
                continue
            log.warning(
                "%s[%d]: re-reading from offset %d, which the stream never processed",
                tp.topic,
                tp.partition,
                offset,
            )
            # Spaced out: a batch fetched before the seek can still pass through the
            # drain loop and move its read offset past the re-read records, in which case
            # the hole is still there next time and the partition is rewound again.
            self._holes[tp] = (offset, now)
            await self.seek(tp, offset)
