"""Held parts: the newest per month and call, sent in bounded chunks, per partition."""

from __future__ import annotations

from heart.agents.reporting import agent
from heart.agents.reporting.agent import PartOutbox
from heart.schemas.reports import Part


def part(seq: int) -> Part:
    return Part(seq=seq, route="ccd", handled=["ccd"])


def test_the_newest_part_of_a_call_replaces_the_one_held() -> None:
    outbox = PartOutbox()
    outbox.hold(0, "C1", {"2024-07": part(1)})
    outbox.hold(0, "C1", {"2024-07": part(2), "2024-08": part(2)})
    outbox.hold(1, "C2", {"2024-07": part(1)})

    taken = outbox.take(0)
    assert [(m, [(e.key, e.part.seq) for e in entries]) for m, entries in taken] == [
        ("2024-07", [("C1", 2)]),
        ("2024-08", [("C1", 2)]),
    ]
    assert outbox.take(0) == []
    assert [m for m, _ in outbox.take(1)] == ["2024-07"]


def test_a_partition_is_full_at_the_flush_size_and_sends_in_chunks() -> None:
    outbox = PartOutbox()
    for i in range(agent.FLUSH_PARTS - 1):
        outbox.hold(3, f"C{i}", {"2024-07": part(1)})
    assert not outbox.full(3)
    outbox.hold(3, "last", {"2024-07": part(1)})
    assert outbox.full(3) and not outbox.full(2)

    chunks = outbox.take(3)
    assert [len(entries) for _, entries in chunks] == [
        agent.PARTS_CHUNK,
        agent.FLUSH_PARTS - agent.PARTS_CHUNK,
    ]
    assert len({e.key for _, entries in chunks for e in entries}) == agent.FLUSH_PARTS


def test_a_revoked_partition_drops_what_it_held_and_is_resent_by_its_next_owner() -> None:
    outbox = PartOutbox()
    outbox.hold(4, "C1", {"2024-07": part(1)})
    outbox.resent.update({4, 5})
    outbox.drop({4})
    assert outbox.take(4) == []
    assert outbox.resent == {5}
