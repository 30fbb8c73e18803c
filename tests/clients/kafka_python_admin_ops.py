#!/usr/bin/env python3
"""Run kafka-python's admin operations for partitions, configs, log dirs, elections and producers.

Steps (the topic T must not exist): create T with 1 partition; create_partitions to 3, then
to 2, to 3 again and for an unknown topic (the last three fail); alter_configs (kafka-python
picks IncrementalAlterConfigs) with SET retention.ms and APPEND cleanup.policy, then DELETE
retention.ms and SUBTRACT cleanup.policy, describing T after each; three refused changes (an
unknown name, an invalid value, APPEND to a non-list config); an idempotent KafkaProducer
writes 3 records to partition 0, then describe_producers for it; describe_log_dirs;
elect_leaders for partitions 0-2 and for a partition that does not exist.

Prints one JSON line with what each step returned (the Rust test checks it):
{"grown": "OK", "shrink_error": "...", "same_error": "...", "unknown_topic_error": "...",
 "after_set": {name: [value, source]}, "after_delete": {...}, "unknown_config": "...",
 "invalid_value": "...", "append_non_list": "...", "producers": [{...}], "log_dirs": [...],
 "election": {partition: error_code}, "election_unknown": {partition: error_code}}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import _harness as h

SCRIPT = "kafka_python_admin_ops"
WATCHED = ("retention.ms", "cleanup.policy")


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--topic", required=True)
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    h.client_logger("kafka", args.verbose)

    from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError

    topic = args.topic
    result: dict = {}
    stage = "connect admin client"

    def failure(call) -> str:
        """The error `call` raises, as 'ErrorClass: message'; 'no error' if it succeeds."""
        try:
            call()
        except KafkaError as exc:
            return h.describe(exc)
        return "no error"

    try:
        timeout_ms = max(1, min(30_000, deadline.remaining_ms()))
        admin = KafkaAdminClient(
            bootstrap_servers=args.bootstrap,
            client_id=SCRIPT,
            bootstrap_timeout_ms=deadline.remaining_ms(),
            request_timeout_ms=timeout_ms,
        )
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)

        def alter(configs: dict) -> str:
            changed = admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)],
                raise_on_unknown=False,
                incremental=True,
            )
            return changed["topic"][topic]

        def described() -> dict:
            configs = admin.describe_configs([resource], config_filter="all")["topic"][topic]
            return {name: [configs[name]["value"], configs[name]["config_source"]] for name in WATCHED}

        stage = "create topic"
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=timeout_ms)

        stage = "create partitions"
        admin.create_partitions({topic: 3}, timeout_ms=timeout_ms)
        result["grown"] = "OK"
        result["shrink_error"] = failure(lambda: admin.create_partitions({topic: 2}, timeout_ms=timeout_ms))
        result["same_error"] = failure(lambda: admin.create_partitions({topic: 3}, timeout_ms=timeout_ms))
        result["unknown_topic_error"] = failure(
            lambda: admin.create_partitions({topic + "-absent": 3}, timeout_ms=timeout_ms)
        )

        stage = "incremental alter configs"
        result["set"] = alter(
            {"retention.ms": (AlterConfigOp.SET, "1234"), "cleanup.policy": (AlterConfigOp.APPEND, "compact")}
        )
        result["after_set"] = described()
        result["delete"] = alter(
            {"retention.ms": (AlterConfigOp.DELETE, None), "cleanup.policy": (AlterConfigOp.SUBTRACT, "delete")}
        )
        result["after_delete"] = described()
        result["unknown_config"] = alter({"retention.msec": (AlterConfigOp.SET, "1")})
        result["invalid_value"] = alter({"retention.ms": (AlterConfigOp.SET, "soon")})
        result["append_non_list"] = alter({"retention.ms": (AlterConfigOp.APPEND, "1")})

        stage = "idempotent produce"
        producer = KafkaProducer(
            bootstrap_servers=args.bootstrap,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=timeout_ms,
        )
        for i in range(3):
            # Keyed: the topic is compacted by now, and a compacted topic refuses keyless
            # records (INVALID_RECORD, as Kafka).
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0).get(
                timeout=deadline.remaining_s()
            )
        h.close_with_timeout(producer.close, 5, "producer")

        stage = "describe producers"
        states = admin.describe_producers([TopicPartition(topic, 0)])
        result["producers"] = [
            {"producer_id": s.producer_id, "producer_epoch": s.producer_epoch, "last_sequence": s.last_sequence}
            for s in states[TopicPartition(topic, 0)].active_producers
        ]

        stage = "describe log dirs"
        result["log_dirs"] = admin.describe_log_dirs()

        stage = "elect leaders"

        def election(partitions: list[int]) -> dict:
            response = admin.elect_leaders(0, {topic: partitions}, raise_errors=False).to_dict()
            return {
                str(p["partition_id"]): p["error_code"]
                for r in response["replica_election_results"]
                for p in r["partition_result"]
            }

        result["election"] = election([0, 1, 2])
        result["election_unknown"] = election([7])
        h.close_with_timeout(admin.close, 5, "admin")
    except KafkaError as exc:
        h.fail(f"{stage}: {h.describe(exc)}", **result)
    except Exception as exc:  # noqa: BLE001 - any client error is a test failure with its stage
        h.fail(f"{stage}: unexpected {h.describe(exc)}", **result)

    h.succeed(result)


if __name__ == "__main__":
    main()
