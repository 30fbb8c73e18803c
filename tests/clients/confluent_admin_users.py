#!/usr/bin/env python3
"""Manage SCRAM users with confluent-kafka's AdminClient (AlterUserScramCredentials and
DescribeUserScramCredentials), logged in as an admin over SASL_SSL, and log in as the users
it makes.

Steps: as --admin, upsert --user with SCRAM-SHA-256 (iterations 8192) and SCRAM-SHA-512
(iterations 4096); describe that user and all users; a Producer logs in as the new user with
each mechanism and produces one record to --topic; the SCRAM-SHA-256 credential is deleted and
a login with it must then fail while SCRAM-SHA-512 still works; describing an unknown user
fails with RESOURCE_NOT_FOUND. Passwords come from the environment variables
STRATO_TEST_ADMIN_PASSWORD and STRATO_TEST_PASSWORD.

Prints one JSON line: {"described": {"SCRAM-SHA-256": 8192, "SCRAM-SHA-512": 4096},
"all_users": [...], "produced": {"SCRAM-SHA-256": true, "SCRAM-SHA-512": true},
"deleted_refused": "<error>", "after_delete_sha512": true, "unknown_user_error": "<error>"}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import os

import _harness as h

SCRIPT = "confluent_admin_users"


def main() -> None:
    p = h.parser(__doc__.splitlines()[0])
    p.add_argument("--admin", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--ca", required=True, help="PEM file of the CA that signed the broker's certificate")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"{SCRIPT} against {args.bootstrap}")
    deadline = h.Deadline(args.timeout_s)
    admin_password = os.environ["STRATO_TEST_ADMIN_PASSWORD"]
    password = os.environ["STRATO_TEST_PASSWORD"]

    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    def settings(user: str, pw: str, mechanism: str) -> dict:
        return {
            "bootstrap.servers": args.bootstrap,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": args.ca,
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": pw,
            "socket.timeout.ms": 10_000,
        }

    def timeout() -> float:
        return max(1.0, deadline.remaining_s())

    result: dict = {}
    stage = "alter users"
    try:
        admin = AdminClient(settings(args.admin, admin_password, "SCRAM-SHA-512"))
        futures = admin.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(
                    args.user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), password.encode()
                ),
                UserScramCredentialUpsertion(
                    args.user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
                ),
            ],
            request_timeout=timeout(),
        )
        for future in futures.values():
            future.result(timeout=timeout())

        stage = "describe users"
        described = admin.describe_user_scram_credentials([args.user], request_timeout=timeout())
        description = described[args.user].result(timeout=timeout())
        result["described"] = {
            info.mechanism.name.replace("_", "-"): info.iterations for info in description.scram_credential_infos
        }
        everyone = admin.describe_user_scram_credentials(request_timeout=timeout()).result(timeout=timeout())
        result["all_users"] = sorted(everyone)

        stage = "produce as the new user"
        produced = {}
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"]:
            produced[mechanism] = produce(Producer, settings(args.user, password, mechanism), args.topic, timeout())
        result["produced"] = produced

        stage = "delete a credential"
        for future in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(args.user, ScramMechanism.SCRAM_SHA_256)], request_timeout=timeout()
        ).values():
            future.result(timeout=timeout())
        refused = login_error(AdminClient, settings(args.user, password, "SCRAM-SHA-256"))
        if refused is None:
            h.fail("a deleted credential still logs in", **result)
        result["deleted_refused"] = refused
        result["after_delete_sha512"] = produce(
            Producer, settings(args.user, password, "SCRAM-SHA-512"), args.topic, timeout()
        )

        stage = "describe an unknown user"
        try:
            admin.describe_user_scram_credentials(["no-such-user"], request_timeout=timeout())[
                "no-such-user"
            ].result(timeout=timeout())
            h.fail("an unknown user was described", **result)
        except KafkaException as exc:
            result["unknown_user_error"] = str(exc.args[0])
    except KafkaException as exc:
        h.fail(f"{stage}: {exc}", **result)
    h.succeed(result)


def produce(producer_class, settings: dict, topic: str, timeout_s: float) -> bool:
    errors: list = []
    producer = producer_class(settings)
    producer.produce(topic, b"made by AdminClient", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(timeout_s)
    if errors != [None]:
        h.fail(f"produce as {settings['sasl.username']} ({settings['sasl.mechanism']}): {errors}")
    return True


def login_error(admin_class, settings: dict) -> str | None:
    """The error of a login with `settings`, or None if it succeeded."""
    from confluent_kafka import KafkaException

    import time

    errors: list = []
    settings = dict(settings, error_cb=lambda err: errors.append(str(err)))
    admin = admin_class(settings)
    try:
        admin.list_topics(timeout=5)
        return None
    except KafkaException as exc:
        # Error callbacks are served by poll(); librdkafka reports the refused login there.
        end = time.monotonic() + 10
        while not errors and time.monotonic() < end:
            admin.poll(0.2)
        return "; ".join(errors) or str(exc)


if __name__ == "__main__":
    main()
