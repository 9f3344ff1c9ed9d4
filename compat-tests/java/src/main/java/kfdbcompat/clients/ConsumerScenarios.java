package kfdbcompat.clients;

import static kfdbcompat.clients.Util.*;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/** The consumer's positioning calls: seek, offsetsForTimes, position, committed, watermarks. */
public final class ConsumerScenarios {
    private ConsumerScenarios() {}

    /**
     * 100 records with timestamps t0, t0+10, ... in one partition. beginningOffsets/endOffsets are
     * 0/100; offsetsForTimes finds the first record at or after a time (exact and in between) and
     * null past the last; seek(n) then poll starts at n; position follows consumption;
     * seekToEnd/seekToBeginning; commitSync with metadata is returned by committed(), also to a new
     * consumer of the group.
     */
    public static void consumer_positions(String bootstrap) throws Exception {
        String topic = unique("java-positions");
        String group = unique("java-positions-group");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 1, null);
        }
        long t0 = System.currentTimeMillis() - 3_600_000;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap))) {
            for (int i = 0; i < 100; i++) {
                p.send(new ProducerRecord<>(topic, 0, t0 + 10L * i, bytes("k" + i), bytes("v" + i)));
            }
            p.flush();
        }
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
            c.assign(List.of(tp));
            checkEq(0L, c.beginningOffsets(List.of(tp)).get(tp), "beginning offset");
            checkEq(100L, c.endOffsets(List.of(tp)).get(tp), "end offset");
            Map<TopicPartition, OffsetAndTimestamp> exact = c.offsetsForTimes(Map.of(tp, t0 + 250));
            checkEq(25L, exact.get(tp).offset(), "offsetsForTimes(exact) offset");
            checkEq(t0 + 250, exact.get(tp).timestamp(), "offsetsForTimes(exact) timestamp");
            checkEq(26L, c.offsetsForTimes(Map.of(tp, t0 + 251)).get(tp).offset(), "offsetsForTimes(between)");
            checkEq(0L, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset(), "offsetsForTimes(0)");
            checkEq(null, c.offsetsForTimes(Map.of(tp, t0 + 10_000)).get(tp), "offsetsForTimes(after the last)");

            c.seek(tp, 42);
            checkEq(42L, c.position(tp), "position after seek");
            List<ConsumerRecord<byte[], byte[]>> got = pollAtLeast(c, 1);
            checkEq(42L, got.get(0).offset(), "first offset polled after seek(42)");
            checkEq("v42", str(got.get(0).value()), "first value polled after seek(42)");
            long pos = c.position(tp);
            checkEq(got.get(got.size() - 1).offset() + 1, pos, "position after poll");

            c.seekToEnd(List.of(tp));
            checkEq(100L, c.position(tp), "position after seekToEnd");
            c.seekToBeginning(List.of(tp));
            checkEq(0L, c.position(tp), "position after seekToBeginning");

            checkEq(null, c.committed(Set.of(tp)).get(tp), "committed before any commit");
            c.commitSync(Map.of(tp, new OffsetAndMetadata(57, "meta-57")));
            OffsetAndMetadata committed = c.committed(Set.of(tp)).get(tp);
            checkEq(57L, committed.offset(), "committed offset");
            checkEq("meta-57", committed.metadata(), "committed metadata");
        }
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
            c.assign(List.of(tp));
            checkEq(57L, c.committed(Set.of(tp)).get(tp).offset(), "committed offset seen by a new consumer");
            List<ConsumerRecord<byte[], byte[]>> got = pollAtLeast(c, 1);
            checkEq(57L, got.get(0).offset(), "a new consumer of the group starts at the committed offset");
        }
        log("offsets, times, seeks, positions and commits as expected");
    }

    static List<ConsumerRecord<byte[], byte[]>> pollAtLeast(KafkaConsumer<byte[], byte[]> c, int n) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (out.size() < n) {
            check(System.nanoTime() < deadline, "polling " + n + " records timed out with " + out.size());
            c.poll(Duration.ofMillis(500)).forEach(out::add);
        }
        return out;
    }
}
