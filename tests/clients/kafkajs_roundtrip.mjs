#!/usr/bin/env node
// Create a topic, produce with kafkajs' idempotent producer and check the offsets it reports.
//
// kafkajs 2.2.4 never sends flexible protocol versions (ApiVersions v2, Metadata v6, Produce
// v7, ListOffsets v3, CreateTopics v3, InitProducerId v1), so it covers the old encodings that
// the other clients skip, and JoinGroup/SyncGroup/OffsetCommit/OffsetFetch in their old forms.
//
// Steps: admin.createTopics (3 partitions), which must return true; createTopics again, which
// must return false or throw TOPIC_ALREADY_EXISTS; an idempotent producer
// (maxInFlightRequests 1, acks -1) sends N records (key k{i}, value v{i}, header h=i) in sends
// of 500 and each send's RecordMetadata must give, per partition, the base offset that follows
// the records acknowledged before; admin.fetchTopicOffsets must give, per partition, low 0 and
// high = the records acknowledged there; admin.fetchTopicOffsetsByTimestamp with a time before
// the first send must give offset 0 for every partition that has records. A consumer of group
// "<topic>-group" (fromBeginning) then reads every record (each key k{i} with value v{i} once),
// commits, and disconnects (LeaveGroup); admin.fetchOffsets must give the high watermarks.
//
// The topic must not exist before the run. Records go to partitions by kafkajs' default
// (Java-compatible murmur2) partitioner, wrapped to learn where each record went.
//
// Usage: node kafkajs_roundtrip.mjs --bootstrap HOST:PORT --topic T --count N [--timeout-s S]
//        [--verbose]   (kafkajs must be resolvable: NODE_PATH=<dir>/node_modules)
//
// Prints one JSON line: {"produced": N, "partitions": 3, "high_watermarks": {"0": n0, ...},
// "created": true, "already_exists": true, "already_exists_via": "returned false" or
// "threw TOPIC_ALREADY_EXISTS", "group_consumed": N, "group_committed": {"0": n0, ...}}. Same contract as tests/clients/_harness.py: stdout carries
// exactly that line (or {"error": ..., ...partial results}); exit 0 success, 1 check or client
// failure, 2 bad arguments (usage on stderr, stdout empty), 3 the hard --timeout-s passed.

import { writeSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const SCRIPT = "kafkajs_roundtrip";
const PARTITIONS = 3;
const RECORDS_PER_SEND = 500;
const EXIT_FAILURE = 1;
const EXIT_BAD_ARGS = 2;
const EXIT_TIMEOUT = 3;

let outputDone = false;

// Writes the one JSON line and exits. writeSync and process.exit, not console.log: the
// kafkajs client keeps sockets and timers open that must not keep a finished run alive, and
// the line must be written before the process goes.
function emit(code, result, message) {
  if (outputDone) return;
  outputDone = true;
  if (message !== undefined) writeSync(2, `error: ${message}\n`);
  const sorted = Object.fromEntries(Object.entries(result).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeSync(1, JSON.stringify(sorted) + "\n");
  process.exit(code);
}

const succeed = (result) => emit(0, result, undefined);
const fail = (message, partial = {}) => emit(EXIT_FAILURE, { error: message, ...partial }, message);

class CheckFailed extends Error {}

// "Name: message [type] <- cause ...": kafkajs wraps the broker's error (KafkaJSProtocolError
// with .type such as TOPIC_ALREADY_EXISTS) in retry errors, and aggregates per-topic errors.
function describe(err) {
  const parts = [];
  for (let e = err, depth = 0; e && depth < 5; e = e.cause, depth++) {
    let text = `${e.name || "Error"}: ${e.message}`;
    if (e.type) text += ` [${e.type}]`;
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      text += ` (${e.errors.map((inner) => `${inner.type || inner.name}: ${inner.message}`).join("; ")})`;
    }
    parts.push(text);
    if (e.cause === e) break;
  }
  return parts.join(" <- ");
}

function usage() {
  return `usage: node ${SCRIPT}.mjs --bootstrap HOST:PORT --topic TOPIC --count N [--timeout-s S] [--verbose]\n`;
}

function parseArguments() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        bootstrap: { type: "string" },
        topic: { type: "string" },
        count: { type: "string" },
        "timeout-s": { type: "string", default: "60" },
        verbose: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    writeSync(2, `${usage()}${SCRIPT}: error: ${err.message}\n`);
    process.exit(EXIT_BAD_ARGS);
  }
  const bad = (message) => {
    writeSync(2, `${usage()}${SCRIPT}: error: ${message}\n`);
    process.exit(EXIT_BAD_ARGS);
  };
  if (!values.bootstrap) bad("--bootstrap is required");
  if (!values.topic) bad("--topic is required");
  const count = Number(values.count);
  if (!Number.isInteger(count) || count <= 0) bad(`--count must be an integer > 0, got ${values.count}`);
  const timeoutS = Number(values["timeout-s"]);
  if (!(timeoutS > 0)) bad(`--timeout-s must be > 0, got ${values["timeout-s"]}`);
  return { bootstrap: values.bootstrap, topic: values.topic, count, timeoutS, verbose: values.verbose };
}

// kafkajs' default logger writes INFO and DEBUG with console.info/console.log, i.e. on stdout,
// which belongs to the JSON line: everything goes to stderr, each distinct message once (up to
// a cap) unless --verbose, so a client retrying a refused connection cannot bury the rest.
function stderrLogCreator(verbose) {
  const seen = new Set();
  return () =>
    ({ namespace, label, log }) => {
      const { message, timestamp, ...fields } = log;
      const line = `${timestamp} kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(fields)}`;
      if (!verbose) {
        const key = `${label} ${namespace} ${message}`;
        if (seen.has(key) || seen.size >= 100) return;
        seen.add(key);
      }
      writeSync(2, line + "\n");
    };
}

function record(i) {
  return { key: `k${i}`, value: `v${i}`, headers: { h: String(i) } };
}

async function main() {
  const args = parseArguments();
  const watchdog = setTimeout(() => {
    const message = `timed out after ${args.timeoutS} s: ${SCRIPT} against ${args.bootstrap}`;
    emit(EXIT_TIMEOUT, { error: message }, message);
  }, args.timeoutS * 1000);
  // The waits of the script itself end before the watchdog, so a slow step fails with its own
  // message (a request timeout) rather than the generic one.
  const requestTimeoutMs = Math.max(1000, Math.min(30_000, Math.floor(args.timeoutS * 1000 * 0.5)));

  // Loaded after the watchdog starts, so even a slow load is bounded. createRequire because
  // ES module imports ignore NODE_PATH, which is how the test points at kafkajs.
  const require = createRequire(import.meta.url);
  let kafkajs;
  try {
    kafkajs = require("kafkajs");
  } catch (err) {
    fail(`cannot load kafkajs (NODE_PATH=${process.env.NODE_PATH ?? ""}; run ./scripts/test.sh): ${err.message}`);
  }
  const { Kafka, logLevel, Partitioners } = kafkajs;

  // Short retries everywhere: a broker-side error must surface as a failure within seconds,
  // not as kafkajs' default 5 retries up to 30 s apart (the idempotent producer would even
  // retry forever by default).
  const retry = { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 };
  const kafka = new Kafka({
    clientId: SCRIPT,
    brokers: [args.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: requestTimeoutMs,
    retry,
    logLevel: args.verbose ? logLevel.DEBUG : logLevel.ERROR,
    logCreator: stderrLogCreator(args.verbose),
  });

  const result = { created: false };
  let stage = "connect admin client";
  const admin = kafka.admin({ retry });
  let producer;
  let consumer;
  try {
    await admin.connect();

    stage = "create topic";
    const topics = [{ topic: args.topic, numPartitions: PARTITIONS }];
    // waitForLeaders (the default) also polls Metadata until every partition has a leader.
    const created = await admin.createTopics({ topics, timeout: requestTimeoutMs });
    if (created !== true) {
      throw new CheckFailed(`createTopics returned ${created}, expected true (the topic must not exist before the run)`);
    }
    result.created = true;

    stage = "create existing topic";
    try {
      const again = await admin.createTopics({ topics, timeout: requestTimeoutMs });
      if (again !== false) {
        result.already_exists = false;
        throw new CheckFailed(`creating existing topic ${args.topic} returned ${again}, expected false or TOPIC_ALREADY_EXISTS`);
      }
      result.already_exists = true;
      result.already_exists_via = "returned false";
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      if (!describe(err).includes("TOPIC_ALREADY_EXISTS")) throw err;
      result.already_exists = true;
      result.already_exists_via = "threw TOPIC_ALREADY_EXISTS";
    }

    stage = "connect producer";
    // The default partitioner, wrapped to learn where each record went: RecordMetadata gives
    // only a base offset per partition, not how many records it holds. A retried send asks
    // again and gets the same answer (same key, same partition count).
    const partitionOf = new Map();
    const createPartitioner = () => {
      const inner = Partitioners.DefaultPartitioner();
      return (input) => {
        const partition = inner(input);
        partitionOf.set(input.message, partition);
        return partition;
      };
    };
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner, retry });
    await producer.connect();

    // Every record's timestamp is at or after `beforeFirstSend` (kafkajs stamps Date.now()).
    const beforeFirstSend = Date.now();
    const acknowledged = new Map(); // partition -> records acknowledged
    for (let start = 0; start < args.count; start += RECORDS_PER_SEND) {
      const end = Math.min(args.count, start + RECORDS_PER_SEND);
      stage = `produce records ${start}..${end - 1}`;
      const messages = [];
      for (let i = start; i < end; i++) messages.push(record(i));
      const metadata = await producer.send({ topic: args.topic, messages, acks: -1 });

      const sent = new Map();
      for (const message of messages) {
        const partition = partitionOf.get(message);
        if (partition === undefined) throw new CheckFailed(`record ${message.key} was never given a partition`);
        sent.set(partition, (sent.get(partition) ?? 0) + 1);
      }
      for (const [partition, n] of sent) {
        const entries = metadata.filter((m) => m.topicName === args.topic && m.partition === partition);
        if (entries.length !== 1) {
          throw new CheckFailed(
            `send of records ${start}..${end - 1}: ${entries.length} RecordMetadata entries for partition ${partition}, expected 1: ${JSON.stringify(metadata)}`,
          );
        }
        const [entry] = entries;
        const expected = acknowledged.get(partition) ?? 0;
        if (entry.errorCode !== 0 || String(entry.baseOffset) !== String(expected)) {
          throw new CheckFailed(
            `send of records ${start}..${end - 1}, partition ${partition}: errorCode ${entry.errorCode} baseOffset ${entry.baseOffset}, expected errorCode 0 baseOffset ${expected}`,
          );
        }
        acknowledged.set(partition, expected + n);
      }
      const unexpected = metadata.filter((m) => !sent.has(m.partition));
      if (unexpected.length > 0) {
        throw new CheckFailed(`send of records ${start}..${end - 1}: RecordMetadata for partitions without records: ${JSON.stringify(unexpected)}`);
      }
      result.produced = end;
    }

    stage = "fetch topic offsets";
    const offsets = await admin.fetchTopicOffsets(args.topic);
    if (offsets.length !== PARTITIONS) {
      throw new CheckFailed(`fetchTopicOffsets returned ${offsets.length} partitions, expected ${PARTITIONS}: ${JSON.stringify(offsets)}`);
    }
    result.partitions = offsets.length;
    const highWatermarks = {};
    for (const { partition, high, low } of [...offsets].sort((a, b) => a.partition - b.partition)) {
      const expected = acknowledged.get(partition) ?? 0;
      highWatermarks[String(partition)] = Number(high);
      if (high !== String(expected) || low !== "0") {
        result.high_watermarks = highWatermarks;
        throw new CheckFailed(`partition ${partition}: low ${low} high ${high}, expected low 0 high ${expected} (records acknowledged there)`);
      }
    }
    result.high_watermarks = highWatermarks;

    stage = "fetch topic offsets by timestamp";
    const byTimestamp = await admin.fetchTopicOffsetsByTimestamp(args.topic, beforeFirstSend);
    for (const partition of acknowledged.keys()) {
      const entry = byTimestamp.find((o) => o.partition === partition);
      if (!entry || entry.offset !== "0") {
        throw new CheckFailed(
          `fetchTopicOffsetsByTimestamp(${beforeFirstSend}) for partition ${partition}: ${JSON.stringify(entry)}, expected offset "0": ${JSON.stringify(byTimestamp)}`,
        );
      }
    }

    stage = "connect group consumer";
    const groupId = `${args.topic}-group`;
    consumer = kafka.consumer({ groupId, retry, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    await consumer.connect();
    await consumer.subscribe({ topics: [args.topic], fromBeginning: true });
    stage = "consume as a group member";
    const seen = new Set();
    let resolveAll;
    const all = new Promise((resolve) => {
      resolveAll = resolve;
    });
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ message }) => {
        const key = message.key.toString();
        if (message.value.toString() !== `v${key.slice(1)}`) {
          fail(`${stage}: key ${key} came with value ${message.value.toString()}`, result);
        }
        seen.add(key);
        if (seen.size === args.count) resolveAll();
      },
    });
    await all;
    result.group_consumed = seen.size;
    stage = "disconnect group consumer";
    // Disconnecting commits the consumed offsets and leaves the group.
    await consumer.disconnect();
    consumer = undefined;
    stage = "fetch group offsets";
    const committed = await admin.fetchOffsets({ groupId, topics: [args.topic] });
    result.group_committed = Object.fromEntries(
      committed[0].partitions
        .sort((a, b) => a.partition - b.partition)
        .map(({ partition, offset }) => [String(partition), Number(offset)]),
    );
  } catch (err) {
    if (err instanceof CheckFailed) fail(`${stage}: ${err.message}`, result);
    fail(`${stage}: ${describe(err)}`, result);
  }

  // A failed or stuck disconnect fails nothing: the results are in.
  for (const [name, client] of [["consumer", consumer], ["producer", producer], ["admin", admin]]) {
    if (client === undefined) continue;
    let timer;
    const giveUp = new Promise((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 5000);
    });
    try {
      if ((await Promise.race([client.disconnect(), giveUp])) === "timeout") {
        writeSync(2, `warning: ${name}.disconnect() did not return within 5 s\n`);
      }
    } catch (err) {
      writeSync(2, `warning: ${name}.disconnect() failed: ${describe(err)}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
  clearTimeout(watchdog);
  succeed(result);
}

main().catch((err) => fail(`unexpected ${describe(err)}`));
