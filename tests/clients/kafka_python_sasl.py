#!/usr/bin/env python3
"""Produce and consume with kafka-python over SASL (SASL_SSL or SASL_PLAINTEXT), then check
(with --check-refusal) that a wrong password is refused.

Steps: a KafkaProducer logs in with --mechanism as --user and sends --count records to
--topic (partition 0); a KafkaConsumer (no group) logs in the same way and reads them back
from offset 0; with --check-refusal a third client logs in with a wrong password, which must fail with kafka-python's
authentication error. The password comes from the environment variable STRATO_TEST_PASSWORD,
never from the command line.

Prints one JSON line: {"produced": N, "consumed": N, "refused": "<error text>"} (no
"refused" without --check-refusal).
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import os

import _harness as h

SCRIPT = "kafka_python_sasl"


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=h.positive_int, required=True)
    p.add_argument("--protocol", choices=["SASL_SSL", "SASL_PLAINTEXT"], required=True)
    p.add_argument("--mechanism", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--ca", help="PEM file of the CA that signed the broker's certificate (SASL_SSL)")
    p.add_argument(
        "--check-refusal",
        action="store_true",
        help="also log in with a wrong password (kafka-python then waits out its bootstrap timeout)",
    )
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)
    password = os.environ["STRATO_TEST_PASSWORD"]

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    def security(pw: str) -> dict:
        settings = {
            "bootstrap_servers": args.bootstrap,
            "security_protocol": args.protocol,
            "sasl_mechanism": args.mechanism,
            "sasl_plain_username": args.user,
            "sasl_plain_password": pw,
        }
        if args.protocol == "SASL_SSL":
            settings["ssl_cafile"] = args.ca
            settings["ssl_check_hostname"] = True
        return settings

    result: dict = {"produced": 0, "consumed": 0}
    stage = "produce"
    try:
        producer = KafkaProducer(client_id=SCRIPT, acks="all", **security(password))
        futures = [
            producer.send(args.topic, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=0)
            for i in range(args.count)
        ]
        producer.flush(timeout=deadline.remaining_s())
        for future in futures:
            future.get(timeout=deadline.remaining_s())
            result["produced"] += 1
        h.close_with_timeout(producer.close, 10, "producer")

        stage = "consume"
        consumer = KafkaConsumer(client_id=SCRIPT, enable_auto_commit=False, **security(password))
        partition = TopicPartition(args.topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        values = []
        while len(values) < args.count:
            if deadline.expired():
                h.fail(f"consumed only {len(values)} of {args.count}", **result)
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value.decode() for r in records)
        if values != [f"v{i}" for i in range(args.count)]:
            h.fail(f"read back {values[:5]}... instead of v0..v{args.count - 1}", **result)
        result["consumed"] = len(values)
        h.close_with_timeout(consumer.close, 10, "consumer")

        if not args.check_refusal:
            h.succeed(result)
        stage = "wrong password"
        # kafka-python logs why a connection failed and reports only that bootstrapping timed
        # out: the log carries the broker's SASL_AUTHENTICATION_FAILED message.
        import logging

        seen: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        collector = Collect(level=logging.DEBUG)
        logging.getLogger("kafka").addHandler(collector)
        logging.getLogger("kafka").setLevel(logging.DEBUG)
        try:
            KafkaConsumer(client_id=SCRIPT, bootstrap_timeout_ms=15_000, **security(password + "-wrong")).topics()
            h.fail("a wrong password was accepted", **result)
        except KafkaError as exc:
            failures = [m for m in seen if "Authentication failed" in m]
            result["refused"] = failures[0] if failures else h.describe(exc)
        finally:
            logging.getLogger("kafka").removeHandler(collector)
    except KafkaError as exc:
        h.fail(f"{stage}: {h.describe(exc)}", **result)
    h.succeed(result)


if __name__ == "__main__":
    main()
