package strato;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * What Kafka Connect does with its config topic, with the official Java client: a compacted
 * topic of one partition where each connector's config is a record keyed by the connector
 * (a null value deletes it), read back from the beginning to the end offset into a map.
 *
 * <p>Usage: java -cp strato-java-clients.jar strato.JavaCompactedConfigs --bootstrap HOST:PORT
 * --topic T --mode write|read [--rounds N] [--timeout-s S]
 *
 * <p>write: creates the topic (cleanup.policy=compact) and writes N rounds of configs of
 * connectors 0..19 (round r of connector c: {"connector": c, "tasks.max": r}); in the last
 * round connectors 15..19 are deleted (tombstones); then one more record, alone, keyed
 * "commit". Output: {"written": records, "latest": {key: value or null}}.
 *
 * <p>read: assigns the partition, seeks to the beginning, reads up to the end offset.
 * Output: {"configs": {key: value} (deleted keys absent), "records": records read}.
 */
public final class JavaCompactedConfigs {
    private static final String PROGRAM = "java_compacted_configs";
    private static final int CONNECTORS = 20;
    private static final int DELETED_FROM = 15;

    public static void main(String[] argv) {
        Map<String, String> args = JavaRoundTrip.parseNamedArgs(
                PROGRAM, argv, Set.of("--bootstrap", "--topic", "--mode", "--rounds", "--timeout-s"),
                Map.of("--timeout-s", "90", "--rounds", "50"));
        JavaRoundTrip.exitAfter(Double.parseDouble(args.get("--timeout-s")));
        Map<String, Object> result = new TreeMap<>();
        String bootstrap = args.get("--bootstrap");
        String topic = args.get("--topic");
        try {
            if (args.get("--mode").equals("write")) {
                write(bootstrap, topic, Integer.parseInt(args.get("--rounds")), result);
            } else {
                read(bootstrap, topic, result);
            }
        } catch (Throwable t) {
            JavaRoundTrip.fail(args.get("--mode") + ": " + JavaRoundTrip.describe(t), result);
        }
        JavaRoundTrip.emit(0, result, null);
    }

    private static void write(String bootstrap, String topic, int rounds, Map<String, Object> result)
            throws Exception {
        Properties admin = new Properties();
        admin.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin client = Admin.create(admin)) {
            NewTopic config = new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of(
                            "cleanup.policy", "compact",
                            "min.cleanable.dirty.ratio", "0.01",
                            // A dirty tail below the ratio is cleaned when 2 s old.
                            "max.compaction.lag.ms", "2000"));
            client.createTopics(List.of(config)).all().get();
        }
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Map<String, Object> latest = new TreeMap<>();
        int written = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int round = 0; round < rounds; round++) {
                for (int c = 0; c < CONNECTORS; c++) {
                    String key = "connector-" + c;
                    boolean delete = round == rounds - 1 && c >= DELETED_FROM;
                    String value = delete ? null
                            : "{\"connector\": " + c + ", \"tasks.max\": " + round + "}";
                    producer.send(new ProducerRecord<>(topic, 0, key, value)).get();
                    latest.put(key, value);
                    written++;
                }
            }
            producer.send(new ProducerRecord<>(topic, 0, "commit", "rounds=" + rounds)).get();
            latest.put("commit", "rounds=" + rounds);
            written++;
        }
        result.put("written", written);
        result.put("latest", latest);
    }

    private static void read(String bootstrap, String topic, Map<String, Object> result) {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Map<String, Object> configs = new TreeMap<>();
        int records = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            while (consumer.position(tp) < end) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    records++;
                    if (record.value() == null) {
                        configs.remove(record.key());
                    } else {
                        configs.put(record.key(), record.value());
                    }
                }
            }
        }
        result.put("configs", configs);
        result.put("records", records);
    }
}
