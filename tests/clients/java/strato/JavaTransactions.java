package strato;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.CommonClientConfigs;
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
 * The official Java client's transactions: a transactional producer runs three transactions
 * over every partition of a topic (record i of round r, value "r-i", to partition i mod P),
 * committing the first and the last and aborting the middle one; then a group-less consumer
 * at each isolation level reads every partition from the start to its end offset (the last
 * stable offset at read_committed).
 *
 * <p>Usage: java -cp strato-java-clients.jar strato.JavaTransactions --bootstrap HOST:PORT
 * --topic T --partitions P --transactional-id ID [--timeout-s S]
 *
 * <p>Output contract as JavaRoundTrip: one JSON line, {"read_committed": {partition: [values
 * in offset order]}, "read_uncommitted": {...}, "end_offsets": {partition: offset}}.
 */
public final class JavaTransactions {
    private static final String PROGRAM = "java_transactions";
    private static final int RECORDS_PER_PARTITION = 10;

    public static void main(String[] argv) {
        Map<String, String> args = parseArgs(argv);
        Map<String, Object> result = new TreeMap<>();
        JavaRoundTrip.exitAfter(Double.parseDouble(args.get("--timeout-s")));
        String topic = args.get("--topic");
        int partitions = Integer.parseInt(args.get("--partitions"));
        String stage = "transactions";
        try {
            produce(args.get("--bootstrap"), args.get("--transactional-id"), topic, partitions);
            for (String isolation : List.of("read_committed", "read_uncommitted")) {
                stage = "consume " + isolation;
                result.put(isolation, consume(args.get("--bootstrap"), topic, partitions, isolation, result));
            }
        } catch (Throwable t) {
            JavaRoundTrip.fail(stage + ": " + JavaRoundTrip.describe(t), result);
        }
        JavaRoundTrip.emit(0, result, null);
    }

    private static void produce(String bootstrap, String transactionalId, String topic, int partitions) {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (int round = 0; round < 3; round++) {
                producer.beginTransaction();
                for (int i = 0; i < RECORDS_PER_PARTITION * partitions; i++) {
                    producer.send(new ProducerRecord<>(topic, i % partitions, null, round + "-" + i));
                }
                // Every record written before the transaction ends, so the aborted ones are
                // in the log too (an abort does not send what is still queued).
                producer.flush();
                if (round == 1) {
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                }
            }
        }
    }

    /** Values by partition, in offset order; the end offsets go into `result` at read_committed. */
    private static Map<String, List<String>> consume(
            String bootstrap, String topic, int partitions, String isolation, Map<String, Object> result) {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Map<String, List<String>> values = new TreeMap<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> assigned = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                assigned.add(new TopicPartition(topic, p));
                values.put(String.valueOf(p), new ArrayList<>());
            }
            consumer.assign(assigned);
            consumer.seekToBeginning(assigned);
            Map<TopicPartition, Long> ends = consumer.endOffsets(assigned);
            if (isolation.equals("read_committed")) {
                Map<String, Object> endOffsets = new TreeMap<>();
                ends.forEach((tp, offset) -> endOffsets.put(String.valueOf(tp.partition()), offset));
                result.put("end_offsets", endOffsets);
            }
            while (!assigned.stream().allMatch(tp -> consumer.position(tp) >= ends.get(tp))) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    values.get(String.valueOf(record.partition())).add(record.value());
                }
            }
        }
        return values;
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Set<String> known = Set.of("--bootstrap", "--topic", "--partitions", "--transactional-id", "--timeout-s");
        return JavaRoundTrip.parseNamedArgs(PROGRAM, argv, known, Map.of("--timeout-s", "60"));
    }
}
