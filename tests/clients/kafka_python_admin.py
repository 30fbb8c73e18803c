#!/usr/bin/env python3
"""Create a topic with kafka-python's KafkaAdminClient and read it back through admin APIs.

Steps: CreateTopics (num_partitions=P, replication_factor=1); wait until Metadata shows the
topic with P partitions, each with a leader; CreateTopics again, which must fail with
TopicAlreadyExistsError; DescribeConfigs for the topic (every config, not only modified
ones); ListTopics (Metadata for all topics), which must include it.

The topic must not exist before the run. The topic spec is passed as kafka-python 3.x's dict
form ({name: {"num_partitions": P, "replication_factor": 1}}), which sends the same
CreateTopics request as the deprecated list of NewTopic.

Prints one JSON line: {"created": true, "already_exists_error": true, "partitions": P,
"configs": {"<name>": "<value>" or null}, "listed": true, "topics": [...all topic names]}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import time

import _harness as h

SCRIPT = "kafka_python_admin"


def topic_not_ready(topic: dict | None, partitions: int) -> str | None:
    """Why a describe_topics entry is not yet the created topic, or None when it is."""
    if topic is None:
        return "missing from metadata"
    if topic.get("error_code", 0) != 0:
        return f"error_code {topic['error_code']}"
    seen = topic.get("partitions") or []
    if len(seen) != partitions:
        return f"{len(seen)} partitions, expected {partitions}"
    leaderless = [p.get("partition_index") for p in seen if p.get("error_code", 0) != 0 or p.get("leader_id", -1) < 0]
    if leaderless:
        return f"partitions without a leader: {sorted(leaderless)}"
    return None


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=h.positive_int, required=True, help="partition count P")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    result: dict = {"created": False}
    stage = "connect admin client"
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=args.bootstrap,
            client_id=SCRIPT,
            bootstrap_timeout_ms=deadline.remaining_ms(),
            request_timeout_ms=max(1, min(30_000, deadline.remaining_ms())),
        )
        new_topic = {args.topic: {"num_partitions": args.partitions, "replication_factor": 1}}

        stage = "create topic"
        admin.create_topics(new_topic, timeout_ms=max(1, min(30_000, deadline.remaining_ms())))
        result["created"] = True

        stage = "wait for topic metadata"
        while True:
            topics = admin.describe_topics([args.topic])
            reason = topic_not_ready(next((t for t in topics if t.get("name") == args.topic), None), args.partitions)
            if reason is None:
                break
            if deadline.expired():
                h.fail(f"topic {args.topic} not ready in metadata: {reason}", **result)
            time.sleep(0.2)
        result["partitions"] = args.partitions

        stage = "create existing topic"
        try:
            admin.create_topics(new_topic, timeout_ms=max(1, min(30_000, deadline.remaining_ms())))
        except TopicAlreadyExistsError:
            result["already_exists_error"] = True
        else:
            result["already_exists_error"] = False
            h.fail(f"creating existing topic {args.topic} succeeded; expected TopicAlreadyExistsError", **result)

        stage = "describe configs"
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, args.topic)], config_filter="all")
        topic_configs = described.get("topic", {}).get(args.topic)
        if topic_configs is None:
            h.fail(f"describe_configs returned no entry for topic {args.topic}: {described!r}", **result)
        result["configs"] = {name: config.get("value") for name, config in sorted(topic_configs.items())}

        stage = "list topics"
        listed = admin.list_topics()
        result["topics"] = sorted(listed)
        result["listed"] = args.topic in listed
        if not result["listed"]:
            h.fail(f"list_topics does not include {args.topic}", **result)
        h.close_with_timeout(admin.close, 5, "admin")
    except KafkaError as exc:
        h.fail(f"{stage}: {h.describe(exc)}", **result)
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its stage
        h.fail(f"{stage}: unexpected {h.describe(exc)}", **result)

    h.succeed(result)


if __name__ == "__main__":
    main()
