"""Topic administration: create the catalog's topics, idempotently."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from heart.streams.settings import HeartSettings
from heart.streams.topics import CATALOG, CHANGELOGS, TopicSpec

log = logging.getLogger(__name__)


async def create_topics(
    settings: HeartSettings, specs: Iterable[TopicSpec] | None = None
) -> dict[str, str]:
    """Create every missing topic. Returns ``{name: "created" | "exists"}``.

    By default the catalog and every stage's table changelogs: left to Faust, a changelog
    is declared only when a worker starts, so after a broker loss the broker's
    auto-creation would make it with the wrong partition count (docs/reliability.md, "Topics are
    never auto-created").
    """
    specs = list(all_topics() if specs is None else specs)
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        result: dict[str, str] = {}
        wanted = []
        for spec in specs:
            name = spec.full_name(settings.topic_prefix)
            if name in existing:
                result[name] = "exists"
            else:
                wanted.append(
                    NewTopic(
                        name,
                        num_partitions=spec.partitions,
                        replication_factor=settings.topic_replication,
                        topic_configs=dict(spec.config),
                    )
                )
        for topic in wanted:
            try:
                response = await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                result[topic.name] = "exists"
                continue
            _raise_for_errors(response)
            result[topic.name] = "created"
            log.info("created topic %s (%d partitions)", topic.name, topic.num_partitions)
        return result
    finally:
        await admin.close()


def all_topics() -> list[TopicSpec]:
    """The catalog's topics, then the stages' table changelogs."""
    return [*CATALOG.values(), *CHANGELOGS.values()]


async def describe_topics(settings: HeartSettings) -> dict[str, int]:
    """Partition count of every catalog and changelog topic that exists."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        names = [s.full_name(settings.topic_prefix) for s in all_topics()]
        present = set(await admin.list_topics())
        described = await admin.describe_topics([n for n in names if n in present])
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


def _raise_for_errors(response: object) -> None:
    # CreateTopics answers per topic; a 36 (TOPIC_ALREADY_EXISTS) is success for us.
    for entry in getattr(response, "topic_errors", []) or []:
        name, code = entry[0], entry[1]
        if code not in (0, 36):
            message = entry[2] if len(entry) > 2 else ""
            raise RuntimeError(f"could not create topic {name}: error {code} {message}")
