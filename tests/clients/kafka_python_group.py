#!/usr/bin/env python3
"""Consume a topic as a member of a consumer group with kafka-python, commit and leave.

A KafkaConsumer with group_id subscribes to the topic (auto_offset_reset=earliest, manual
commits), polls until it has received --expect records (or, with --expect 0, until the
broker-side end offsets are reached without any record), commits synchronously and closes
(which sends LeaveGroup). The records come from whatever the group had committed before:
a second run of the same group continues where the first one stopped.

Prints one JSON line: {"consumed": N, "first_offsets": {"<partition>": offset},
"assignment": [partitions], "committed": {"<partition>": offset}}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import _harness as h

SCRIPT = "kafka_python_group"


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", type=int, required=True, help="records to consume before committing")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)

    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    stage = "connect consumer"
    consumed = 0
    first_offsets: dict[str, int] = {}
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=args.bootstrap,
            client_id=SCRIPT,
            group_id=args.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        stage = "subscribe"
        consumer.subscribe([args.topic])
        last_seen: dict[int, int] = {}
        stage = "consume"
        while True:
            if deadline.expired():
                h.fail(f"consumed {consumed} of {args.expect} records", consumed=consumed)
            batches = consumer.poll(timeout_ms=min(500, max(1, deadline.remaining_ms())))
            for records in batches.values():
                for record in records:
                    previous = last_seen.get(record.partition)
                    if previous is not None and record.offset != previous + 1:
                        h.fail(f"partition {record.partition}: offset {record.offset} after {previous}")
                    last_seen[record.partition] = record.offset
                    first_offsets.setdefault(str(record.partition), record.offset)
                    consumed += 1
            assignment = consumer.assignment()
            if consumed >= args.expect and assignment:
                # Everything expected arrived; with --expect 0 also make sure we are at the end.
                ends = consumer.end_offsets(list(assignment))
                if all(consumer.position(tp) >= ends[tp] for tp in assignment):
                    break
        if consumed != args.expect:
            h.fail(f"consumed {consumed} records, expected {args.expect}", consumed=consumed)
        stage = "commit"
        consumer.commit()
        partitions = sorted(tp.partition for tp in consumer.assignment())
        stage = "read committed offsets"
        committed = {str(p): consumer.committed(TopicPartition(args.topic, p)) for p in partitions}
        stage = "close"
        h.close_with_timeout(lambda: consumer.close(autocommit=False), 10, "consumer")
    except KafkaError as exc:
        h.fail(f"{stage}: {h.describe(exc)}", consumed=consumed)
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its stage
        h.fail(f"{stage}: unexpected {h.describe(exc)}", consumed=consumed)

    h.succeed(
        {
            "consumed": consumed,
            "first_offsets": first_offsets,
            "assignment": partitions,
            "committed": committed,
        }
    )


if __name__ == "__main__":
    main()
