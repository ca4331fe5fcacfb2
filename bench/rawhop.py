"""The physical floor: a raw aiokafka consume -> JSON transform -> produce relay.

``python -m bench.rawhop SRC DST GROUP`` copies every record of ``SRC`` (topic prefix
applied) to ``DST`` with the same key, after parsing the JSON value, adding one field and
serialising it again: the least a stage can do per event. It uses the same ``HEART_*``
settings as the stages (fetch wait, poll size, linger, group timeouts), commits
automatically every second, and sends without awaiting each record: it awaits a whole
polled batch before polling again.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from heart.streams.settings import HeartSettings

READY = "rawhop ready"


async def relay(settings: HeartSettings, src: str, dst: str, group: str) -> None:
    kwargs = settings.aiokafka_kwargs()
    prefix = settings.topic_prefix
    consumer = AIOKafkaConsumer(
        f"{prefix}{src}",
        group_id=f"{prefix}{group}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=int(settings.commit_interval_s * 1000),
        fetch_max_wait_ms=settings.fetch_wait_ms,
        max_poll_records=settings.max_poll_records,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        rebalance_timeout_ms=int(settings.rebalance_timeout_s * 1000),
        **kwargs,  # type: ignore[arg-type]
    )
    producer = AIOKafkaProducer(
        linger_ms=int(settings.producer_linger_s * 1000),
        **kwargs,  # type: ignore[arg-type]
    )
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announced = False
    target = f"{prefix}{dst}"
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            if not announced and consumer.assignment():
                print(READY, flush=True)
                announced = True
            sends = []
            for records in batch.values():
                for record in records:
                    body = orjson.loads(record.value)
                    body["hops"] = body.get("hops", 0) + 1
                    sends.append(
                        await producer.send(target, value=orjson.dumps(body), key=record.key)
                    )
            if sends:
                await asyncio.gather(*sends)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    src, dst, group = sys.argv[1:4]
    asyncio.run(relay(HeartSettings.from_env(), src, dst, group))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
