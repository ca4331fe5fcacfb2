"""Fixes to faust-streaming and aiokafka that hold on any Kafka broker, Apache Kafka
included: records skipped and committed over around a rebalance, topics never
auto-created, the fetcher's hand-over without tasks, and a Monitor without per-event
statistics. Nothing here is for the embedded broker alone (that is
:mod:`heart.streams.embedded`)."""
