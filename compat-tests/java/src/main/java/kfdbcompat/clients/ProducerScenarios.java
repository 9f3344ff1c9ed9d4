package kfdbcompat.clients;

import static kfdbcompat.clients.Util.*;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

/** The producer: defaults (idempotent, acks=all), every compression, headers, large records. */
public final class ProducerScenarios {
    private ProducerScenarios() {}

    /**
     * 3,000 keyed records with headers and explicit timestamps over 3 partitions from a producer
     * with the client's defaults: every send is acknowledged, offsets are dense from 0 in each
     * partition in send order, and a consumer reads back identical keys, values, headers and
     * timestamps (null key and empty value included).
     */
    public static void producer_defaults_roundtrip(String bootstrap) throws Exception {
        String topic = unique("java-defaults");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 3, null);
        }
        int n = 3000;
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        long ts0 = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap))) {
            for (int i = 0; i < n; i++) {
                byte[] key = i % 100 == 7 ? null : bytes("key-" + i);
                byte[] value = i % 100 == 9 ? new byte[0] : bytes("value-" + i);
                List<Header> headers = List.of(new RecordHeader("seq", bytes(Integer.toString(i))),
                        new RecordHeader("empty", new byte[0]), new RecordHeader("null", null));
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, i % 3, ts0 + i, key, value, headers);
                sent.add(r);
                acks.add(p.send(r));
            }
            p.flush();
        }
        Map<Integer, Long> next = new HashMap<>();
        for (int i = 0; i < n; i++) {
            RecordMetadata md = acks.get(i).get(60, TimeUnit.SECONDS);
            long expected = next.getOrDefault(md.partition(), 0L);
            checkEq(expected, md.offset(), "offset of record " + i + " in partition " + md.partition());
            next.put(md.partition(), expected + 1);
            checkEq(ts0 + i, md.timestamp(), "acknowledged timestamp of record " + i);
        }
        checkEq(Map.of(0, 1000L, 1, 1000L, 2, 1000L), next, "records per partition");
        Map<TopicPartition, List<ConsumerRecord<byte[], byte[]>>> got = readAll(bootstrap, partitions(topic, 3), null);
        for (int i = 0; i < n; i++) {
            ProducerRecord<byte[], byte[]> s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(new TopicPartition(topic, s.partition())).get(i / 3);
            checkEq(i / 3L, r.offset(), "consumed offset");
            check(Arrays.equals(s.key(), r.key()), "key of record " + i);
            check(Arrays.equals(s.value(), r.value()), "value of record " + i);
            checkEq(s.timestamp(), r.timestamp(), "timestamp of record " + i);
            Header[] h = r.headers().toArray();
            checkEq(3, h.length, "header count of record " + i);
            checkEq("seq", h[0].key(), "header 0 key");
            checkEq(Integer.toString(i), str(h[0].value()), "header seq of record " + i);
            checkEq(0, h[1].value().length, "empty header value");
            checkEq(null, h[2].value(), "null header value");
        }
        log("3,000 records acknowledged with dense offsets and read back identical");
    }

    /** Each of none, gzip, snappy, lz4 and zstd: 2,000 records round trip with dense offsets. */
    public static void producer_compressions(String bootstrap) throws Exception {
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            String topic = unique("java-codec-" + codec);
            try (Admin admin = Admin.create(adminProps(bootstrap))) {
                createTopic(admin, topic, 1, null);
            }
            Properties props = producerProps(bootstrap);
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            props.put(ProducerConfig.LINGER_MS_CONFIG, "20");
            int n = 2000;
            Random rnd = new Random(42);
            List<byte[]> values = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    // compressible text with a random tail
                    byte[] v = bytes(codec + " record " + i + " " + "x".repeat(rnd.nextInt(200)) + rnd.nextLong());
                    values.add(v);
                    acks.add(p.send(new ProducerRecord<>(topic, 0, bytes("k" + i), v)));
                }
                for (int i = 0; i < n; i++) {
                    checkEq((long) i, acks.get(i).get(60, TimeUnit.SECONDS).offset(), codec + ": offset of record " + i);
                }
            }
            List<ConsumerRecord<byte[], byte[]>> got = readAll(bootstrap, partitions(topic, 1), null).get(new TopicPartition(topic, 0));
            checkEq(n, got.size(), codec + ": records read back");
            for (int i = 0; i < n; i++) {
                checkEq((long) i, got.get(i).offset(), codec + ": offset");
                check(Arrays.equals(values.get(i), got.get(i).value()), codec + ": value of record " + i);
                checkEq("k" + i, str(got.get(i).key()), codec + ": key of record " + i);
            }
            log(codec + ": 2,000 records round trip");
        }
    }

    /**
     * A topic with max.message.bytes=1,048,588 (Kafka's default): a ~1,000,000-byte record is
     * accepted and read back by a consumer with default fetch sizes; a 1,100,000-byte record (the
     * producer's own limit raised) is refused by the broker with RecordTooLargeException
     * (MESSAGE_TOO_LARGE), and the partition stays usable.
     */
    public static void producer_large_records(String bootstrap) throws Exception {
        String topic = unique("java-large");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 1, Map.of("max.message.bytes", "1048588"));
        }
        Random rnd = new Random(7);
        byte[] big = new byte[1_000_000];
        rnd.nextBytes(big);
        byte[] tooBig = new byte[1_100_000];
        rnd.nextBytes(tooBig);
        Properties props = producerProps(bootstrap);
        props.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "4000000");
        props.put(ProducerConfig.BUFFER_MEMORY_CONFIG, "16000000");
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
            checkEq(0L, p.send(new ProducerRecord<>(topic, 0, bytes("big"), big)).get(60, TimeUnit.SECONDS).offset(), "offset of the big record");
            try {
                p.send(new ProducerRecord<>(topic, 0, bytes("too-big"), tooBig)).get(60, TimeUnit.SECONDS);
                throw new AssertionError("a record above max.message.bytes was accepted");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof RecordTooLargeException, "expected RecordTooLargeException, got " + e.getCause());
            }
            checkEq(1L, p.send(new ProducerRecord<>(topic, 0, bytes("small"), bytes("after"))).get(60, TimeUnit.SECONDS).offset(),
                    "offset of the record after the refused one");
        }
        List<ConsumerRecord<byte[], byte[]>> got = readAll(bootstrap, partitions(topic, 1), null).get(new TopicPartition(topic, 0));
        checkEq(2, got.size(), "records read back");
        check(Arrays.equals(big, got.get(0).value()), "the big record's bytes");
        checkEq("after", str(got.get(1).value()), "the record after");
        // a consumer whose max.partition.fetch.bytes is below the record still gets it (first batch rule)
        Properties small = new Properties();
        small.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "65536");
        small.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, "65536");
        got = readAll(bootstrap, partitions(topic, 1), small).get(new TopicPartition(topic, 0));
        check(Arrays.equals(big, got.get(0).value()), "the big record through 64 KiB fetches");
        log("1,000,000-byte record accepted and read, 1,100,000-byte record refused with RecordTooLargeException");
    }
}
