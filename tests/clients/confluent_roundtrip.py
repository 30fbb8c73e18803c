#!/usr/bin/env python3
"""Produce N records with confluent-kafka (librdkafka) and read them back by assign().

The producer is idempotent (enable.idempotence=true, so acks=all) and uses the given
compression; it sends records k{i}/v{i} with header ("h", b"{i}") to a topic the broker
auto-creates and checks that every delivery report succeeded. The consumer needs a group.id in
confluent-kafka, so it gets a random one, but it never subscribes or commits: it assign()s
every partition from list_topics() at OFFSET_BEGINNING, so no group coordinator is needed.
It polls until it has seen every produced (partition, offset) with the right key, value and
headers.

Prints one JSON line: {"produced": N, "consumed": N, "partitions": P, "compression": C,
"offset_ranges": {"<partition>": [first, last]}, "other_records": R}
where R counts records at offsets this run did not produce (an earlier run on the topic).
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import threading
import uuid

import _harness as h

SCRIPT = "confluent_roundtrip"
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


class ClientErrors:
    """Collects librdkafka's error_cb reports: a fatal one fails the run at once, the others
    (e.g. a refused connection that librdkafka retries) explain a later timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fatal: list[str] = []
        self.other: list[str] = []

    def __call__(self, err) -> None:
        with self._lock:
            (self.fatal if err.fatal() else self.other).append(f"{err.name()}: {err.str()}")

    def check_fatal(self, stage: str) -> None:
        with self._lock:
            if self.fatal:
                h.fail(f"{stage}: fatal client error: {self.fatal[0]}")

    def hint(self) -> str:
        with self._lock:
            return f" (last client error: {self.other[-1]})" if self.other else ""


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=h.positive_int, required=True, help="number of records N")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

    # librdkafka logs through this logger (served by poll/flush) instead of straight to stderr.
    log = {"logger": h.client_logger("librdkafka", args.verbose)}
    if args.verbose:
        log["debug"] = "broker,protocol,msg,fetch"
    stage = "create producer"
    produced: dict[tuple[int, int], int] = {}
    try:
        producer_errors = ClientErrors()
        producer = Producer(
            {
                "bootstrap.servers": args.bootstrap,
                "client.id": SCRIPT,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": args.compression,
                # A record that is not acknowledged by then gets a failed delivery report, which
                # this script turns into a clear error before the watchdog fires.
                "message.timeout.ms": max(1, deadline.remaining_ms()),
                "error_cb": producer_errors,
                **log,
            }
        )

        delivery_errors: list[str] = []
        reports: list[tuple[int, int, int]] = []  # (i, partition, offset)

        def on_delivery(i: int):
            def report(err, msg) -> None:
                if err is not None:
                    delivery_errors.append(f"record {i}: {err.name()}: {err.str()}")
                else:
                    reports.append((i, msg.partition(), msg.offset()))

            return report

        stage = "produce"
        for i in range(args.count):
            key, value, headers = h.expected_record(i)
            while True:
                try:
                    producer.produce(args.topic, key=key, value=value, headers=headers, on_delivery=on_delivery(i))
                    break
                except BufferError:
                    # Local queue full: serve delivery reports to make room, bounded by the deadline.
                    if deadline.expired():
                        h.fail(f"produce: local queue still full at the deadline after {i} records{producer_errors.hint()}")
                    producer.poll(0.1)
            producer.poll(0)
            producer_errors.check_fatal(stage)

        stage = "flush"
        not_delivered = producer.flush(deadline.remaining_s())
        producer_errors.check_fatal(stage)
        if not_delivered:
            h.fail(f"flush: {not_delivered} of {args.count} records not delivered in time{producer_errors.hint()}")
        if delivery_errors:
            h.fail(f"{len(delivery_errors)} delivery reports failed, first: {delivery_errors[0]}")
        if len(reports) != args.count:
            h.fail(f"got {len(reports)} delivery reports for {args.count} records")
        for i, partition, offset in reports:
            if offset < 0:
                h.fail(f"record {i} delivered with offset {offset}")
            if (partition, offset) in produced:
                h.fail(f"records {produced[(partition, offset)]} and {i} both delivered at partition {partition} offset {offset}")
            produced[(partition, offset)] = i

        stage = "create consumer"
        consumer_errors = ClientErrors()
        consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "client.id": SCRIPT,
                "group.id": f"{SCRIPT}-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "error_cb": consumer_errors,
                **log,
            }
        )
        stage = "list topics"
        topic_metadata = None
        while topic_metadata is None:
            metadata = consumer.list_topics(args.topic, timeout=max(0.1, min(5.0, deadline.remaining_s())))
            candidate = metadata.topics.get(args.topic)
            if candidate is not None and candidate.error is None and candidate.partitions:
                topic_metadata = candidate
            elif deadline.expired():
                reason = candidate.error if candidate is not None else "topic missing"
                h.fail(f"list topics: no partitions for topic {args.topic}: {reason}", produced=len(produced))
        partitions = set(topic_metadata.partitions)
        missing_partitions = {partition for partition, _ in produced} - partitions
        if missing_partitions:
            h.fail(f"records were delivered to partitions {sorted(missing_partitions)} that metadata does not list ({sorted(partitions)})")

        stage = "consume"
        consumer.assign([TopicPartition(args.topic, partition, OFFSET_BEGINNING) for partition in sorted(partitions)])
        checker = h.RoundtripChecker(produced)
        while not checker.done():
            consumer_errors.check_fatal(stage)
            if deadline.expired():
                h.fail(
                    checker.missing_summary() + consumer_errors.hint(),
                    produced=len(produced),
                    consumed=len(checker.seen),
                )
            msg = consumer.poll(max(0.01, min(0.5, deadline.remaining_s())))
            if msg is None:
                continue
            if msg.error() is not None:
                # A fatal error ends the run at the next check; others (a topic not yet known to
                # the fetcher, a dropped connection) librdkafka retries, and a timeout reports them.
                consumer_errors(msg.error())
                continue
            checker.add(msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
        h.close_with_timeout(consumer.close, 5, "consumer")
    except h.CheckFailed as exc:
        h.fail(str(exc), produced=len(produced))
    except KafkaException as exc:
        h.fail(f"{stage}: {exc}", produced=len(produced))
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its stage
        h.fail(f"{stage}: unexpected {h.describe(exc)}", produced=len(produced))

    h.succeed(
        {
            "produced": len(produced),
            "consumed": len(checker.seen),
            "partitions": len(partitions),
            "compression": args.compression,
            "offset_ranges": h.offset_ranges(produced),
            "other_records": checker.other_records,
        }
    )


if __name__ == "__main__":
    main()
