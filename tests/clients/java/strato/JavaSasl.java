package strato;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The official Java client logged in with SASL over SASL_SSL (a PEM trust store): a producer
 * sends one record every 100 ms for --seconds, so that with a broker session lifetime shorter
 * than that (KIP-368) its connection re-authenticates while it works; then a group-less
 * consumer reads every record back. The password comes from STRATO_TEST_PASSWORD.
 *
 * <p>Usage: java -cp strato-java-clients.jar strato.JavaSasl --bootstrap HOST:PORT --topic T
 * --mechanism SCRAM-SHA-512|SCRAM-SHA-256|PLAIN --user U --ca CA.pem --seconds S [--timeout-s S]
 *
 * <p>Output contract as JavaRoundTrip: one JSON line, {"produced": N, "consumed": N}.
 */
public final class JavaSasl {
    private static final String PROGRAM = "java_sasl";

    public static void main(String[] argv) {
        Map<String, String> args = parseArgs(argv);
        Map<String, Object> result = new TreeMap<>();
        JavaRoundTrip.exitAfter(Double.parseDouble(args.get("--timeout-s")));
        String stage = "produce";
        try {
            Properties security = security(args);
            Properties producerProps = new Properties();
            producerProps.putAll(security);
            producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            producerProps.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
            producerProps.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
            long seconds = Long.parseLong(args.get("--seconds"));
            int produced = 0;
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps)) {
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
                while (System.nanoTime() < end) {
                    Future<RecordMetadata> sent =
                            producer.send(new ProducerRecord<>(args.get("--topic"), 0, null, "v" + produced));
                    RecordMetadata metadata = sent.get(30, TimeUnit.SECONDS);
                    if (metadata.offset() != produced) {
                        throw new IllegalStateException("record " + produced + " at offset " + metadata.offset());
                    }
                    produced++;
                    Thread.sleep(100);
                }
            }
            result.put("produced", produced);

            stage = "consume";
            Properties consumerProps = new Properties();
            consumerProps.putAll(security);
            consumerProps.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            consumerProps.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            consumerProps.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
            int consumed = 0;
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps)) {
                TopicPartition partition = new TopicPartition(args.get("--topic"), 0);
                consumer.assign(List.of(partition));
                consumer.seekToBeginning(List.of(partition));
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (consumed < produced) {
                    if (System.nanoTime() > end) {
                        throw new IllegalStateException("consumed only " + consumed + " of " + produced);
                    }
                    for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                        if (!record.value().equals("v" + consumed)) {
                            throw new IllegalStateException("read " + record.value() + " at " + record.offset());
                        }
                        consumed++;
                    }
                }
            }
            result.put("consumed", consumed);
        } catch (Throwable t) {
            JavaRoundTrip.fail(stage + ": " + JavaRoundTrip.describe(t), result);
        }
        JavaRoundTrip.emit(0, result, null);
    }

    private static Properties security(Map<String, String> args) {
        String mechanism = args.get("--mechanism");
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        String password = System.getenv("STRATO_TEST_PASSWORD");
        if (password == null) {
            JavaRoundTrip.fail("STRATO_TEST_PASSWORD is not set", new HashMap<>());
        }
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, args.get("--bootstrap"));
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, PROGRAM);
        props.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL");
        props.put(SaslConfigs.SASL_MECHANISM, mechanism);
        props.put(SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + args.get("--user")
                + "\" password=\"" + password + "\";");
        props.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        props.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, args.get("--ca"));
        return props;
    }

    private static Map<String, String> parseArgs(String[] argv) {
        Set<String> known = Set.of("--bootstrap", "--topic", "--mechanism", "--user", "--ca", "--seconds", "--timeout-s");
        return JavaRoundTrip.parseNamedArgs(PROGRAM, argv, known, Map.of("--timeout-s", "60"));
    }
}
