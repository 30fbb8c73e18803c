#!/usr/bin/env python3
"""Create, describe and delete ACLs with confluent-kafka's AdminClient (librdkafka).

Steps: create_acls with three bindings for --principal (ALLOW READ on topic --topic literal,
ALLOW WRITE on topics prefixed --topic, DENY DESCRIBE on group --group) and one invalid binding
(an empty topic name), which must be refused while the others are created; describe_acls with
a filter for --principal (ANY resource, ANY pattern type); describe_acls with a MATCH filter
for topic --topic + "-x" (the prefixed binding applies, the literal one does not); delete_acls
with a filter for the topic bindings of --principal; describe_acls again.

The broker must let this client manage ACLs (ALTER and DESCRIBE on the cluster, e.g. as a
super user) and hold no other ACL of --principal.

Prints one JSON line: {"created": 3, "invalid_refused": true, "described": [...],
"matched": [...], "deleted": [...], "remaining": [...]}, each list holding
"<resource type>:<pattern type>:<name>:<operation>:<permission>" strings, sorted.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import _harness as h

SCRIPT = "confluent_acls"


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--principal", required=True, help="e.g. User:alice")
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)

    # Imported after the watchdog starts, so even a slow import is bounded.
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    def text(binding) -> str:
        return ":".join(
            [
                binding.restype.name,
                binding.resource_pattern_type.name,
                binding.name,
                binding.operation.name,
                binding.permission_type.name,
            ]
        )

    def timeout_s() -> float:
        return max(1.0, min(30.0, deadline.remaining_s()))

    result: dict = {}
    stage = "connect admin client"
    try:
        admin = AdminClient({"bootstrap.servers": args.bootstrap, "client.id": SCRIPT})
        wanted = [
            AclBinding(
                ResourceType.TOPIC, args.topic, ResourcePatternType.LITERAL,
                args.principal, "*", AclOperation.READ, AclPermissionType.ALLOW,
            ),
            AclBinding(
                ResourceType.TOPIC, args.topic, ResourcePatternType.PREFIXED,
                args.principal, "*", AclOperation.WRITE, AclPermissionType.ALLOW,
            ),
            AclBinding(
                ResourceType.GROUP, args.group, ResourcePatternType.LITERAL,
                args.principal, "*", AclOperation.DESCRIBE, AclPermissionType.DENY,
            ),
        ]
        invalid = AclBinding(
            ResourceType.TOPIC, "", ResourcePatternType.LITERAL,
            args.principal, "*", AclOperation.READ, AclPermissionType.ALLOW,
        )

        stage = "create ACLs"
        futures = admin.create_acls(wanted + [invalid], request_timeout=timeout_s())
        created = 0
        for binding in wanted:
            futures[binding].result(timeout=timeout_s())
            created += 1
        result["created"] = created
        try:
            futures[invalid].result(timeout=timeout_s())
            result["invalid_refused"] = False
        except Exception:  # noqa: BLE001 - the refusal is what is checked
            result["invalid_refused"] = True

        stage = "describe ACLs of the principal"
        mine = AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY,
            args.principal, None, AclOperation.ANY, AclPermissionType.ANY,
        )
        described = admin.describe_acls(mine, request_timeout=timeout_s()).result(timeout=timeout_s())
        result["described"] = sorted(text(b) for b in described)

        stage = "describe ACLs that apply to a topic"
        applying = AclBindingFilter(
            ResourceType.TOPIC, args.topic + "-x", ResourcePatternType.MATCH,
            None, None, AclOperation.ANY, AclPermissionType.ANY,
        )
        matched = admin.describe_acls(applying, request_timeout=timeout_s()).result(timeout=timeout_s())
        result["matched"] = sorted(text(b) for b in matched)

        stage = "delete topic ACLs of the principal"
        topics = AclBindingFilter(
            ResourceType.TOPIC, None, ResourcePatternType.ANY,
            args.principal, None, AclOperation.ANY, AclPermissionType.ANY,
        )
        deleted = admin.delete_acls([topics], request_timeout=timeout_s())[topics].result(timeout=timeout_s())
        result["deleted"] = sorted(text(b) for b in deleted)

        stage = "describe what remains"
        remaining = admin.describe_acls(mine, request_timeout=timeout_s()).result(timeout=timeout_s())
        result["remaining"] = sorted(text(b) for b in remaining)
    except Exception as exc:  # noqa: BLE001 - reported as the script's failure
        h.fail(f"{stage}: {h.describe(exc)}", **result)
    h.succeed(result)


if __name__ == "__main__":
    main()
