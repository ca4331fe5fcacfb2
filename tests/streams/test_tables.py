"""Every stage's tables are declared once, in the topic catalog, and their changelog
topics are created with the catalog (docs/reliability.md, "Broker loss and table
recovery")."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from heart.agents.registry import STAGES, build_stage
from heart.streams.admin import create_topics, describe_topics
from heart.streams.settings import HeartSettings
from heart.streams.topics import CATALOG, CHANGELOGS, TABLES


def test_the_agents_make_exactly_the_declared_tables() -> None:
    settings = HeartSettings(topic_prefix="decl.")
    made = set()
    for name in STAGES:
        stage = build_stage(name, settings)
        for table in stage.app.tables.values():
            made.add(
                (
                    name,
                    table.name,
                    table.partitions,
                    table.changelog_topic.get_topic_name(),
                    table.changelog_topic.compacting,
                )
            )
    declared = {
        (t.stage, t.name, t.partitions, t.changelog.full_name(settings.topic_prefix), True)
        for t in TABLES
    }
    assert made == declared


@pytest.mark.broker
async def test_topics_create_makes_every_changelog_compacted_with_its_partitions(
    settings: HeartSettings, unique: str
) -> None:
    scoped = settings.model_copy(update={"topic_prefix": f"chl{unique}."})
    result = await create_topics(scoped)
    names = {spec.full_name(scoped.topic_prefix) for spec in CHANGELOGS.values()}
    assert {name: result[name] for name in names} == dict.fromkeys(names, "created")
    partitions = await describe_topics(scoped)
    assert partitions == {
        spec.full_name(scoped.topic_prefix): spec.partitions
        for spec in (*CATALOG.values(), *CHANGELOGS.values())
    }
    admin = AIOKafkaAdminClient(**scoped.aiokafka_kwargs())  # type: ignore[arg-type]
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(names)]
        )
    finally:
        await admin.close()
    policies = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}.get("cleanup.policy")
        for response in described
        for resource in response.resources
    }
    assert policies == dict.fromkeys(names, "compact")
