#!/usr/bin/env python3
"""Produce N records with kafka-python 3.x and read them back without a consumer group.

The producer keeps kafka-python 3.x defaults (idempotence on, acks=all) and sends records
k{i}/v{i} with header ("h", b"{i}") to a topic the broker auto-creates. A group-less consumer
(group_id=None) then assigns every partition of the topic, seeks to the beginning and polls
until it has seen every produced (partition, offset) with the right key, value and headers.

Prints one JSON line: {"produced": N, "consumed": N, "partitions": P,
"offset_ranges": {"<partition>": [first, last]}, "other_records": R}
where R counts records at offsets this run did not produce (an earlier run on the topic).
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import time

import _harness as h

SCRIPT = "kafka_python_roundtrip"


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=h.positive_int, required=True, help="number of records N")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    stage = "connect producer"
    produced: dict[tuple[int, int], int] = {}
    try:
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap,
            client_id=SCRIPT,
            acks="all",
            bootstrap_timeout_ms=deadline.remaining_ms(),
            max_block_ms=deadline.remaining_ms(),
        )
        stage = "produce"
        futures = []
        for i in range(args.count):
            key, value, headers = h.expected_record(i)
            futures.append(producer.send(args.topic, key=key, value=value, headers=headers))
        stage = "flush"
        producer.flush(timeout=deadline.remaining_s())
        stage = "await produce results"
        for i, future in enumerate(futures):
            metadata = future.get(timeout=deadline.remaining_s())
            where = (metadata.partition, metadata.offset)
            if metadata.offset < 0:
                h.fail(f"record {i} acknowledged with offset {metadata.offset}")
            if where in produced:
                h.fail(f"records {produced[where]} and {i} both acknowledged at partition {where[0]} offset {where[1]}")
            produced[where] = i
        h.close_with_timeout(lambda: producer.close(timeout=5), 6, "producer")

        stage = "connect consumer"
        consumer = KafkaConsumer(
            bootstrap_servers=args.bootstrap,
            client_id=SCRIPT,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            bootstrap_timeout_ms=deadline.remaining_ms(),
        )
        stage = "fetch topic metadata"
        partitions: set[int] = set()
        while not partitions:
            partitions = consumer.partitions_for_topic(args.topic)
            if not partitions:
                if deadline.expired():
                    h.fail(f"topic {args.topic} has no partitions in the consumer's metadata", produced=len(produced))
                time.sleep(0.2)
        missing_partitions = {partition for partition, _ in produced} - partitions
        if missing_partitions:
            h.fail(f"records were produced to partitions {sorted(missing_partitions)} that metadata does not list ({sorted(partitions)})")

        stage = "consume"
        assignment = [TopicPartition(args.topic, partition) for partition in sorted(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        checker = h.RoundtripChecker(produced)
        while not checker.done():
            if deadline.expired():
                h.fail(checker.missing_summary(), produced=len(produced), consumed=len(checker.seen))
            batches = consumer.poll(timeout_ms=min(500, max(1, deadline.remaining_ms())))
            for records in batches.values():
                for record in records:
                    checker.add(record.partition, record.offset, record.key, record.value, record.headers)
        h.close_with_timeout(lambda: consumer.close(autocommit=False, timeout_ms=5000), 6, "consumer")
    except h.CheckFailed as exc:
        h.fail(str(exc), produced=len(produced))
    except KafkaError as exc:
        h.fail(f"{stage}: {h.describe(exc)}", produced=len(produced))
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its stage
        h.fail(f"{stage}: unexpected {h.describe(exc)}", produced=len(produced))

    h.succeed(
        {
            "produced": len(produced),
            "consumed": len(checker.seen),
            "partitions": len(partitions),
            "offset_ranges": h.offset_ranges(produced),
            "other_records": checker.other_records,
        }
    )


if __name__ == "__main__":
    main()
