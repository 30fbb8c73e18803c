package strato;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The official Java client's transactions against a broker: a transactional producer
 * commits --count records in transactions of 10 over the topic's partitions, aborts one
 * transaction of 10 more, then a second producer with the same transactional.id fences the
 * first (whose next commit must fail with ProducerFencedException); read_committed and
 * read_uncommitted consumers read everything back.
 *
 * <p>Usage: java -cp strato-java-clients.jar strato.JavaTxn --bootstrap HOST:PORT --topic T
 * --partitions P --count N [--timeout-s S]
 *
 * <p>Output contract as JavaRoundTrip: one JSON line, {"committed": N, "read_committed": N,
 * "read_uncommitted": N + 10, "aborted_visible_committed": 0, "fenced": true}.
 */
public final class JavaTxn {
    private static final int BATCH = 10;

    public static void main(String[] argv) {
        Map<String, String> args = parseArgs(argv);
        Map<String, Object> result = new TreeMap<>();
        double timeoutS = Double.parseDouble(args.get("--timeout-s"));
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep((long) (timeoutS * 1000));
            } catch (InterruptedException e) {
                return;
            }
            JavaRoundTrip.emit(JavaRoundTrip.EXIT_TIMEOUT, Map.of("error", "timed out"), "timed out");
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        String stage = "init";
        String topic = args.get("--topic");
        int partitions = Integer.parseInt(args.get("--partitions"));
        int count = Integer.parseInt(args.get("--count"));
        try {
            KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(args));
            producer.initTransactions();
            stage = "commit";
            int sent = 0;
            while (sent < count) {
                producer.beginTransaction();
                for (int i = 0; i < BATCH && sent < count; i++, sent++) {
                    producer.send(new ProducerRecord<>(topic, sent % partitions, "k" + sent, "c" + sent));
                }
                producer.commitTransaction();
            }
            result.put("committed", sent);
            stage = "abort";
            producer.beginTransaction();
            for (int i = 0; i < BATCH; i++) {
                producer.send(new ProducerRecord<>(topic, i % partitions, "k" + i, "a" + i));
            }
            producer.flush();
            producer.abortTransaction();
            stage = "fence";
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, 0, "z", "zombie"));
            KafkaProducer<String, String> successor = new KafkaProducer<>(producerProps(args));
            successor.initTransactions();
            boolean fenced = false;
            try {
                producer.commitTransaction();
            } catch (ProducerFencedException e) {
                fenced = true;
            } catch (org.apache.kafka.common.KafkaException e) {
                fenced = e.getCause() instanceof ProducerFencedException
                        || e.getClass().getSimpleName().contains("Fenced");
            }
            result.put("fenced", fenced);
            producer.close(Duration.ofSeconds(5));
            successor.close(Duration.ofSeconds(5));

            stage = "read_committed";
            List<String> committed = readAll(args, topic, partitions, "read_committed");
            result.put("read_committed", committed.size());
            result.put("aborted_visible_committed",
                    committed.stream().filter(v -> v.startsWith("a") || v.equals("zombie")).count());
            stage = "read_uncommitted";
            result.put("read_uncommitted", readAll(args, topic, partitions, "read_uncommitted").size());
        } catch (Throwable t) {
            JavaRoundTrip.fail(stage + ": " + JavaRoundTrip.describe(t), result);
        }
        JavaRoundTrip.emit(0, result, null);
    }

    private static Properties producerProps(Map<String, String> args) {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, args.get("--bootstrap"));
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60_000);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60_000);
        return props;
    }

    /** Every record from the beginning up to the end offsets seen at this isolation level. */
    private static List<String> readAll(Map<String, String> args, String topic, int partitions, String isolation) {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, args.get("--bootstrap"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (consumer.position(tp) < ends.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("did not reach the end offsets " + ends);
                }
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    values.add(record.value());
                }
            }
        }
        return values;
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Set<String> known = Set.of("--bootstrap", "--topic", "--partitions", "--count", "--timeout-s");
        Map<String, String> values = new HashMap<>();
        values.put("--timeout-s", "60");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!known.contains(argv[i])) {
                System.err.println("java_txn: unknown argument " + argv[i]);
                System.exit(JavaRoundTrip.EXIT_BAD_ARGS);
            }
            values.put(argv[i], argv[i + 1]);
        }
        for (String name : known) {
            if (!values.containsKey(name)) {
                System.err.println("java_txn: " + name + " is required");
                System.exit(JavaRoundTrip.EXIT_BAD_ARGS);
            }
        }
        return values;
    }
}
