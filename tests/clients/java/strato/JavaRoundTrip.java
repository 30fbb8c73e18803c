package strato;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The official Java client (kafka-clients) against a broker (JavaSasl, in the same jar, logs
 * in with SASL; it shares this class's output helpers): admin, idempotent producer and a
 * group-less consumer, then a consumer group.
 *
 * <p>Steps: Admin.createTopics (3 partitions, RF 1), then the same again, which must fail with
 * TopicExistsException; Admin.describeConfigs of the topic (retention.ms, cleanup.policy); a
 * KafkaProducer with the client's defaults (idempotence on, acks=all) sends N records (key
 * k{i}, value v{i}, header h=i) and every RecordMetadata is collected, and per partition the
 * offsets must be dense from 0; a KafkaConsumer without group.id is assigned every partition,
 * checks beginningOffsets 0 and endOffsets = records
 * acknowledged there, seeks to the beginning and polls until every record came back with its
 * key, value and header at the (partition, offset) the producer was given. Then a KafkaConsumer
 * with group.id (classic protocol) subscribes, reads every record, commits and leaves, and Admin
 * lists, describes (Empty), reads the committed offsets of, and deletes that group.
 *
 * <p>The topic must not exist before the run.
 *
 * <p>Usage: java -jar strato-java-clients.jar --bootstrap HOST:PORT --topic T --count N
 * [--timeout-s S] [--verbose]
 *
 * <p>Same contract as tests/clients/_harness.py: stdout carries exactly one JSON line,
 * {"produced": N, "consumed": N, "partitions": 3, "already_exists": true, "configs":
 * {"retention.ms": ..., "cleanup.policy": ...}, ...}, or {"error": ..., ...partial results};
 * exit 0 success, 1 check or client failure, 2 bad arguments (usage on stderr, stdout empty),
 * 3 the hard --timeout-s passed. The client logs through slf4j and log4j to stderr (log4j2.xml):
 * WARN and up, everything with --verbose.
 */
public final class JavaRoundTrip {
    private static final String PROGRAM = "java_roundtrip";
    private static final int PARTITIONS = 3;
    static final int EXIT_FAILURE = 1;
    static final int EXIT_BAD_ARGS = 2;
    static final int EXIT_TIMEOUT = 3;
    /** Share of --timeout-s that the program's own waits may use (as in _harness.py). */
    private static final double SOFT_DEADLINE_SHARE = 0.85;
    /** Read by log4j2.xml (the root level); --verbose sets it to debug. */
    private static final String LOG_LEVEL_PROPERTY = "strato.log.level";
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(5);

    private static final Object OUTPUT_LOCK = new Object();
    private static boolean outputDone;

    /** A result did not match what was produced; the message says what differed. */
    private static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    private record Args(String bootstrap, String topic, int count, double timeoutS, boolean verbose) {}

    private final Args args;
    private final long softDeadlineNanos;
    /** The results so far; the watchdog thread reads them too. */
    private final Map<String, Object> result = Collections.synchronizedMap(new TreeMap<>());
    /** What the program is doing, for failure and timeout messages. */
    private volatile String stage = "start";

    private JavaRoundTrip(Args args) {
        this.args = args;
        this.softDeadlineNanos = System.nanoTime() + (long) (args.timeoutS() * SOFT_DEADLINE_SHARE * 1e9);
    }

    public static void main(String[] argv) {
        Args args = parseArgs(argv);
        // Before the first logger exists: log4j reads its configuration once.
        if (args.verbose() && System.getProperty(LOG_LEVEL_PROPERTY) == null) {
            System.setProperty(LOG_LEVEL_PROPERTY, "debug");
        }
        JavaRoundTrip run = new JavaRoundTrip(args);
        run.startWatchdog();
        try {
            run.run();
        } catch (CheckFailed e) {
            fail(run.stage + ": " + e.getMessage(), run.result);
        } catch (Throwable t) {
            fail(run.stage + ": " + describe(t), run.result);
        }
        emit(0, run.result, null);
    }

    // -----------------------------------------------------------------------------------------
    // The steps
    // -----------------------------------------------------------------------------------------

    private void run() throws Exception {
        result.put("created", false);
        stage = "create admin client";
        Admin admin = Admin.create(adminProps());
        createTopic(admin);
        describeConfigs(admin);

        stage = "create producer";
        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps());
        Map<Long, Integer> produced = produce(producer);

        stage = "create consumer";
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps());
        consume(consumer, produced);

        consumeAsGroup(admin, produced.size());
        administer(admin);

        // Only on success (a failure halts the JVM at once); a close that fails or times out
        // fails nothing: the results are in.
        stage = "close clients";
        close("consumer", consumer);
        close("producer", producer);
        close("admin", admin);
    }

    private void createTopic(Admin admin) throws Exception {
        stage = "create topic";
        List<NewTopic> topics = List.of(new NewTopic(args.topic(), PARTITIONS, (short) 1));
        CreateTopicsResult created = admin.createTopics(topics);
        created.all().get(remainingMs(), TimeUnit.MILLISECONDS);
        int partitions = created.numPartitions(args.topic()).get(remainingMs(), TimeUnit.MILLISECONDS);
        if (partitions != PARTITIONS) {
            throw new CheckFailed("createTopics reported " + partitions + " partitions, expected " + PARTITIONS);
        }
        result.put("created", true);

        stage = "create existing topic";
        try {
            admin.createTopics(topics).all().get(remainingMs(), TimeUnit.MILLISECONDS);
            result.put("already_exists", false);
            throw new CheckFailed("creating existing topic " + args.topic() + " succeeded, expected TopicExistsException");
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
            result.put("already_exists", true);
        }
    }

    private void describeConfigs(Admin admin) throws Exception {
        stage = "describe topic configs";
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, args.topic());
        Config config = admin.describeConfigs(List.of(resource))
                .all()
                .get(remainingMs(), TimeUnit.MILLISECONDS)
                .get(resource);
        if (config == null) {
            throw new CheckFailed("describeConfigs returned no entry for topic " + args.topic());
        }
        Map<String, Object> configs = new TreeMap<>();
        for (String name : List.of("retention.ms", "cleanup.policy")) {
            ConfigEntry entry = config.get(name);
            if (entry == null) {
                List<String> names = new ArrayList<>();
                for (ConfigEntry e : config.entries()) {
                    names.add(e.name());
                }
                throw new CheckFailed("describeConfigs has no " + name + "; it has " + names);
            }
            configs.put(name, entry.value());
        }
        result.put("configs", configs);
    }

    /** Sends every record; returns (partition, offset) packed by {@link #key} -> record index. */
    private Map<Long, Integer> produce(KafkaProducer<String, String> producer) throws Exception {
        stage = "producer metadata";
        List<PartitionInfo> infos = producer.partitionsFor(args.topic());
        if (infos.size() != PARTITIONS) {
            throw new CheckFailed("partitionsFor gave " + infos.size() + " partitions, expected " + PARTITIONS + ": " + infos);
        }
        result.put("partitions", infos.size());

        stage = "produce";
        List<Future<RecordMetadata>> futures = new ArrayList<>(args.count());
        for (int i = 0; i < args.count(); i++) {
            List<Header> headers = List.of(new RecordHeader("h", utf8(String.valueOf(i))));
            futures.add(producer.send(new ProducerRecord<>(args.topic(), null, "k" + i, "v" + i, headers)));
        }
        stage = "flush producer";
        producer.flush();

        stage = "collect RecordMetadata";
        Map<Long, Integer> produced = new HashMap<>();
        Map<Integer, Long> perPartition = new TreeMap<>();
        for (int i = 0; i < futures.size(); i++) {
            RecordMetadata md;
            try {
                md = futures.get(i).get(remainingMs(), TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                throw new CheckFailed("record " + i + " was not acknowledged: " + describe(e));
            }
            if (!md.hasOffset() || md.offset() < 0) {
                throw new CheckFailed("record " + i + ": RecordMetadata without an offset: " + md);
            }
            Integer before = produced.put(key(md.partition(), md.offset()), i);
            if (before != null) {
                throw new CheckFailed("records " + before + " and " + i + " both got partition " + md.partition() + " offset " + md.offset());
            }
            perPartition.merge(md.partition(), 1L, Long::sum);
            result.put("produced", produced.size());
        }
        // Distinct offsets >= 0, n of them in a partition: dense from 0 iff none is >= n.
        for (long packed : produced.keySet()) {
            int partition = (int) (packed >>> 40);
            long offset = packed & ((1L << 40) - 1);
            if (offset >= perPartition.get(partition)) {
                throw new CheckFailed("partition " + partition + ": offset " + offset + " acknowledged, but only "
                        + perPartition.get(partition) + " records went there (offsets not dense from 0)");
            }
        }
        Map<String, Object> counts = new TreeMap<>();
        perPartition.forEach((p, n) -> counts.put(String.valueOf(p), n));
        result.put("records_per_partition", counts);
        return produced;
    }

    private void consume(KafkaConsumer<String, String> consumer, Map<Long, Integer> produced) throws Exception {
        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(args.topic(), p));
        }
        stage = "assign";
        consumer.assign(partitions);

        stage = "beginningOffsets";
        Map<TopicPartition, Long> beginning = consumer.beginningOffsets(partitions, remaining());
        stage = "endOffsets";
        Map<TopicPartition, Long> end = consumer.endOffsets(partitions, remaining());
        @SuppressWarnings("unchecked")
        Map<String, Object> counts = (Map<String, Object>) result.get("records_per_partition");
        Map<String, Object> endOffsets = new TreeMap<>();
        for (TopicPartition tp : partitions) {
            long expected = ((Number) counts.getOrDefault(String.valueOf(tp.partition()), 0L)).longValue();
            endOffsets.put(String.valueOf(tp.partition()), end.get(tp));
            if (!Long.valueOf(0).equals(beginning.get(tp)) || !Long.valueOf(expected).equals(end.get(tp))) {
                result.put("end_offsets", endOffsets);
                throw new CheckFailed(tp + ": beginning offset " + beginning.get(tp) + ", end offset " + end.get(tp)
                        + ", expected 0 and " + expected + " (records acknowledged there)");
            }
        }
        result.put("end_offsets", endOffsets);

        stage = "seekToBeginning";
        consumer.seekToBeginning(partitions);

        stage = "poll";
        Set<Long> seen = new HashSet<>();
        Map<Integer, Long> lastOffset = new HashMap<>();
        while (seen.size() < produced.size()) {
            long remainingMs = remainingMs();
            if (remainingMs == 0) {
                List<String> missing = new ArrayList<>();
                for (long packed : produced.keySet()) {
                    if (!seen.contains(packed) && missing.size() < 5) {
                        missing.add("p" + (packed >>> 40) + "@" + (packed & ((1L << 40) - 1)));
                    }
                }
                throw new CheckFailed((produced.size() - seen.size()) + " of " + produced.size()
                        + " produced records not consumed in time (e.g. " + missing + ")");
            }
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(Math.min(500, remainingMs)))) {
                Long last = lastOffset.put(r.partition(), r.offset());
                if (last != null && r.offset() <= last) {
                    throw new CheckFailed("partition " + r.partition() + ": offset " + r.offset() + " consumed after offset " + last);
                }
                Integer i = produced.get(key(r.partition(), r.offset()));
                if (i == null) {
                    throw new CheckFailed("partition " + r.partition() + " offset " + r.offset()
                            + ": a record this run did not produce (key " + r.key() + ")");
                }
                Header[] headers = r.headers().toArray();
                String header = headers.length == 1 && headers[0].key().equals("h") && headers[0].value() != null
                        ? new String(headers[0].value(), StandardCharsets.UTF_8)
                        : null;
                if (!("k" + i).equals(r.key()) || !("v" + i).equals(r.value()) || !String.valueOf(i).equals(header)) {
                    List<String> got = new ArrayList<>();
                    for (Header h : headers) {
                        got.add(h.key() + "=" + (h.value() == null ? "null" : new String(h.value(), StandardCharsets.UTF_8)));
                    }
                    throw new CheckFailed("partition " + r.partition() + " offset " + r.offset() + ": expected key=k" + i
                            + " value=v" + i + " headers=[h=" + i + "], got key=" + r.key() + " value=" + r.value()
                            + " headers=" + got);
                }
                seen.add(key(r.partition(), r.offset()));
                result.put("consumed", seen.size());
            }
        }
        result.put("consumed", seen.size());
    }

    /**
     * A consumer with group.id subscribes, reads every record, commits synchronously and
     * closes (LeaveGroup); then Admin lists the group, describes it (Empty, no members), reads
     * its committed offsets (the end offsets) and deletes it.
     */
    private void consumeAsGroup(Admin admin, int expected) throws Exception {
        String group = args.topic() + "-group";
        stage = "create group consumer";
        Properties props = consumerProps();
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        KafkaConsumer<String, String> member = new KafkaConsumer<>(props);
        stage = "subscribe";
        member.subscribe(List.of(args.topic()));
        stage = "poll as a group member";
        int seen = 0;
        while (seen < expected) {
            long remainingMs = remainingMs();
            if (remainingMs == 0) {
                throw new CheckFailed("group member consumed " + seen + " of " + expected + " records");
            }
            seen += member.poll(Duration.ofMillis(Math.min(500, remainingMs))).count();
        }
        result.put("group_consumed", seen);
        result.put("group_assigned_partitions", member.assignment().size());
        stage = "commitSync";
        member.commitSync(remaining());
        stage = "close group consumer";
        member.close(CloseOptions.timeout(CLOSE_TIMEOUT));

        stage = "listGroups";
        boolean listed = false;
        for (GroupListing listing : admin.listGroups(ListGroupsOptions.forConsumerGroups())
                .all()
                .get(remainingMs(), TimeUnit.MILLISECONDS)) {
            listed |= listing.groupId().equals(group);
        }
        result.put("group_listed", listed);
        stage = "describeConsumerGroups";
        ConsumerGroupDescription description = admin.describeConsumerGroups(List.of(group))
                .describedGroups()
                .get(group)
                .get(remainingMs(), TimeUnit.MILLISECONDS);
        result.put("group_state", description.groupState().toString());
        result.put("group_members", description.members().size());
        stage = "listConsumerGroupOffsets";
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata()
                .get(remainingMs(), TimeUnit.MILLISECONDS);
        Map<String, Object> committed = new TreeMap<>();
        offsets.forEach((tp, om) -> committed.put(String.valueOf(tp.partition()), om.offset()));
        result.put("group_committed", committed);
        stage = "deleteConsumerGroups";
        admin.deleteConsumerGroups(List.of(group)).all().get(remainingMs(), TimeUnit.MILLISECONDS);
        result.put("group_deleted", true);
    }

    /**
     * The admin calls of operators' tools (kafka-configs, kafka-topics, kafka-log-dirs,
     * kafka-leader-election, kafka-transactions describe-producers) at the client's newest
     * versions, on the topic the producer wrote.
     */
    private void administer(Admin admin) throws Exception {
        ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, args.topic());
        stage = "incrementalAlterConfigs";
        admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET))))
                .all().get(remainingMs(), TimeUnit.MILLISECONDS);
        Config config = admin.describeConfigs(List.of(topic)).all()
                .get(remainingMs(), TimeUnit.MILLISECONDS).get(topic);
        result.put("altered_retention_ms", config.get("retention.ms").value());
        stage = "incrementalAlterConfigs with an unknown name";
        try {
            admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                    new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                    .all().get(remainingMs(), TimeUnit.MILLISECONDS);
            result.put("unknown_config_refused", false);
        } catch (ExecutionException e) {
            result.put("unknown_config_refused", e.getCause() instanceof InvalidConfigurationException);
        }

        stage = "createPartitions";
        admin.createPartitions(Map.of(args.topic(), NewPartitions.increaseTo(PARTITIONS + 1)))
                .all().get(remainingMs(), TimeUnit.MILLISECONDS);
        TopicDescription described = admin.describeTopics(List.of(args.topic()))
                .allTopicNames().get(remainingMs(), TimeUnit.MILLISECONDS).get(args.topic());
        result.put("partitions_after_create_partitions", described.partitions().size());

        stage = "describeLogDirs";
        Collection<Integer> brokers = new ArrayList<>();
        admin.describeCluster().nodes().get(remainingMs(), TimeUnit.MILLISECONDS)
                .forEach(node -> brokers.add(node.id()));
        Map<Integer, Map<String, LogDirDescription>> dirs = admin.describeLogDirs(brokers)
                .allDescriptions().get(remainingMs(), TimeUnit.MILLISECONDS);
        long replicas = 0;
        for (Map<String, LogDirDescription> perBroker : dirs.values()) {
            for (LogDirDescription dir : perBroker.values()) {
                replicas += dir.replicaInfos().keySet().stream()
                        .filter(tp -> tp.topic().equals(args.topic())).count();
            }
        }
        result.put("log_dir_replicas", replicas);

        stage = "electLeaders";
        Set<TopicPartition> partitions = new HashSet<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(args.topic(), p));
        }
        Map<TopicPartition, java.util.Optional<Throwable>> elected = admin
                .electLeaders(ElectionType.PREFERRED, partitions)
                .partitions().get(remainingMs(), TimeUnit.MILLISECONDS);
        boolean electionsFine = elected.size() == PARTITIONS;
        for (java.util.Optional<Throwable> error : elected.values()) {
            electionsFine &= error.isEmpty() || error.get() instanceof ElectionNotNeededException;
        }
        result.put("elections_fine", electionsFine);

        stage = "describeProducers";
        long producers = 0;
        for (var entry : admin.describeProducers(partitions).all()
                .get(remainingMs(), TimeUnit.MILLISECONDS).entrySet()) {
            producers += entry.getValue().activeProducers().stream()
                    .map(ProducerState::producerId).distinct().count();
        }
        result.put("producer_states", producers);
    }

    // -----------------------------------------------------------------------------------------
    // Client configs: short timeouts, so that a broker-side problem fails within seconds.
    // -----------------------------------------------------------------------------------------

    private Properties common() {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, args.bootstrap());
        p.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        p.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(CommonClientConfigs.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        return p;
    }

    private Properties adminProps() {
        Properties p = common();
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        return p;
    }

    /** The client's defaults otherwise: enable.idempotence=true, acks=all. */
    private Properties producerProps() {
        Properties p = common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        return p;
    }

    /** No group.id (the group step adds one): assign() and no commits. */
    private Properties consumerProps() {
        Properties p = common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return p;
    }

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    /** (partition, offset) as one map key: offsets stay far below 2^40 here. */
    private static long key(int partition, long offset) {
        return ((long) partition << 40) | offset;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** What the program's own waits may still use (0 once the soft deadline passed). */
    private long remainingMs() {
        return Math.max(0, TimeUnit.NANOSECONDS.toMillis(softDeadlineNanos - System.nanoTime()));
    }

    private Duration remaining() {
        return Duration.ofMillis(remainingMs());
    }

    private void startWatchdog() {
        long timeoutMs = (long) (args.timeoutS() * 1000);
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(timeoutMs);
            } catch (InterruptedException e) {
                return;
            }
            String message = "timed out after " + args.timeoutS() + " s: " + PROGRAM + " against " + args.bootstrap()
                    + " while at stage: " + stage;
            Map<String, Object> out;
            synchronized (result) {
                out = new TreeMap<>(result);
            }
            out.put("error", message);
            emit(EXIT_TIMEOUT, out, message);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    static void close(String name, AutoCloseable client) {
        if (client == null) {
            return;
        }
        try {
            if (client instanceof Admin admin) {
                admin.close(CLOSE_TIMEOUT);
            } else if (client instanceof KafkaProducer<?, ?> producer) {
                producer.close(CLOSE_TIMEOUT);
            } else if (client instanceof KafkaConsumer<?, ?> consumer) {
                consumer.close(CloseOptions.timeout(CLOSE_TIMEOUT));
            } else {
                client.close();
            }
        } catch (Exception e) {
            System.err.println("warning: " + name + ".close() failed: " + describe(e));
        }
    }

    /** "Class: message <- Cause: message", without the ExecutionException wrappers. */
    static String describe(Throwable t) {
        StringBuilder out = new StringBuilder();
        int depth = 0;
        for (Throwable e = t; e != null && depth < 5; e = e.getCause() == e ? null : e.getCause()) {
            if (e instanceof ExecutionException && e.getCause() != null) {
                continue;
            }
            if (out.length() > 0) {
                out.append(" <- ");
            }
            out.append(e.getClass().getSimpleName());
            if (e instanceof TimeoutException) {
                out.append(" (the program's own deadline)");
            }
            if (e.getMessage() != null) {
                out.append(": ").append(e.getMessage());
            }
            depth++;
        }
        return out.toString();
    }

    static void fail(String message, Map<String, Object> partial) {
        Map<String, Object> out;
        synchronized (partial) {
            out = new TreeMap<>(partial);
        }
        out.put("error", message);
        emit(EXIT_FAILURE, out, message);
    }

    /** Prints the one JSON line and ends the JVM (halt: no client thread or hook can delay it). */
    static void emit(int code, Map<String, Object> result, String message) {
        synchronized (OUTPUT_LOCK) {
            if (outputDone) {
                return;
            }
            outputDone = true;
            try {
                if (message != null) {
                    System.err.println("error: " + message);
                }
                System.out.println(toJson(result));
                System.out.flush();
                System.err.flush();
            } finally {
                Runtime.getRuntime().halt(code);
            }
        }
    }

    private static String toJson(Object value) {
        StringBuilder out = new StringBuilder();
        writeJson(out, value);
        return out.toString();
    }

    private static void writeJson(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : new TreeMap<>(map).entrySet()) {
                if (!first) {
                    out.append(", ");
                }
                first = false;
                writeJson(out, String.valueOf(e.getKey()));
                out.append(": ");
                writeJson(out, e.getValue());
            }
            out.append('}');
        } else if (value instanceof Collection<?> list) {
            out.append('[');
            boolean first = true;
            for (Object item : list) {
                if (!first) {
                    out.append(", ");
                }
                first = false;
                writeJson(out, item);
            }
            out.append(']');
        } else {
            String s = value.toString();
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }
    }

    // -----------------------------------------------------------------------------------------
    // Arguments
    // -----------------------------------------------------------------------------------------

    private static final String USAGE = "usage: java -jar strato-java-clients.jar --bootstrap HOST:PORT --topic TOPIC"
            + " --count N [--timeout-s S] [--verbose]";

    /** For the other programs of this jar: ends the JVM with EXIT_TIMEOUT after `seconds`. */
    static void exitAfter(double seconds) {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep((long) (seconds * 1000));
            } catch (InterruptedException e) {
                return;
            }
            emit(EXIT_TIMEOUT, Map.of("error", "timed out"), "timed out");
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    /**
     * "--name value" pairs of the other programs of this jar: every name in `known` (those
     * without a default required); exits with EXIT_BAD_ARGS on anything else.
     */
    static Map<String, String> parseNamedArgs(
            String program, String[] argv, Set<String> known, Map<String, String> defaults) {
        Map<String, String> values = new HashMap<>(defaults);
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!known.contains(argv[i])) {
                System.err.println(program + ": unknown argument " + argv[i]);
                System.exit(EXIT_BAD_ARGS);
            }
            values.put(argv[i], argv[i + 1]);
        }
        for (String name : known) {
            if (!values.containsKey(name)) {
                System.err.println(program + ": " + name + " is required");
                System.exit(EXIT_BAD_ARGS);
            }
        }
        return values;
    }

    private static void badArgs(String message) {
        System.err.println(USAGE);
        System.err.println(PROGRAM + ": error: " + message);
        System.exit(EXIT_BAD_ARGS);
    }

    private static Args parseArgs(String[] argv) {
        Map<String, String> values = new HashMap<>();
        values.put("--timeout-s", "60");
        boolean verbose = false;
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i];
            if (arg.equals("--verbose")) {
                verbose = true;
                continue;
            }
            if (arg.equals("-h") || arg.equals("--help")) {
                System.err.println(USAGE);
                System.exit(0);
            }
            String name = arg;
            String value;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                name = arg.substring(0, eq);
                value = arg.substring(eq + 1);
            } else if (i + 1 < argv.length) {
                value = argv[++i];
            } else {
                badArgs("argument " + arg + " needs a value");
                return null;
            }
            if (!Set.of("--bootstrap", "--topic", "--count", "--timeout-s").contains(name)) {
                badArgs("unknown argument " + name);
            }
            values.put(name, value);
        }
        for (String required : List.of("--bootstrap", "--topic", "--count")) {
            if (!values.containsKey(required)) {
                badArgs(required + " is required");
            }
        }
        int count = 0;
        double timeoutS = 0;
        try {
            count = Integer.parseInt(values.get("--count"));
        } catch (NumberFormatException e) {
            badArgs("--count must be an integer > 0, got " + values.get("--count"));
        }
        try {
            timeoutS = Double.parseDouble(values.get("--timeout-s"));
        } catch (NumberFormatException e) {
            badArgs("--timeout-s must be a number > 0, got " + values.get("--timeout-s"));
        }
        if (count <= 0) {
            badArgs("--count must be an integer > 0, got " + count);
        }
        if (!(timeoutS > 0)) {
            badArgs("--timeout-s must be > 0, got " + timeoutS);
        }
        return new Args(values.get("--bootstrap"), values.get("--topic"), count, timeoutS, verbose);
    }
}
