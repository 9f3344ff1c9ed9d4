package kfdbcompat.clients;

import static kfdbcompat.clients.Util.*;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;

/**
 * Consumer groups: the classic protocol with the range and cooperative-sticky assignors, and
 * group.protocol=consumer (KIP-848, server-side assignment).
 */
public final class GroupScenarios {
    private GroupScenarios() {}

    public static void group_classic_range(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, "org.apache.kafka.clients.consumer.RangeAssignor");
        twoMembers(bootstrap, p, "classic", "range");
    }

    public static void group_classic_cooperative_sticky(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        twoMembers(bootstrap, p, "classic", "cooperative-sticky");
    }

    public static void group_consumer_protocol(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        twoMembers(bootstrap, p, "consumer", null);
    }

    /** One group member polling in its own thread, committing synchronously after each batch. */
    static final class Member implements AutoCloseable {
        final String name;
        final Thread thread;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Set<TopicPartition>> assignment = new AtomicReference<>(Set.of());
        final AtomicReference<Throwable> error = new AtomicReference<>();
        final Map<TopicPartition, List<Long>> consumed;

        Member(String name, String bootstrap, String group, String topic, Properties extra,
               Map<TopicPartition, List<Long>> consumed) {
            this.name = name;
            this.consumed = consumed;
            Properties props = consumerProps(bootstrap, group);
            props.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            props.putAll(extra);
            thread = new Thread(() -> {
                try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props)) {
                    c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                        @Override
                        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                        @Override
                        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
                    });
                    while (!stop.get()) {
                        var records = c.poll(Duration.ofMillis(200));
                        Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
                        for (ConsumerRecord<byte[], byte[]> r : records) {
                            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                            consumed.computeIfAbsent(tp, k -> java.util.Collections.synchronizedList(new ArrayList<>())).add(r.offset());
                            commit.put(tp, new OffsetAndMetadata(r.offset() + 1));
                        }
                        if (!commit.isEmpty()) {
                            c.commitSync(commit);
                        }
                        assignment.set(Set.copyOf(c.assignment()));
                    }
                } catch (Throwable t) {
                    error.set(t);
                }
            }, name);
            thread.start();
        }

        void checkAlive() {
            if (error.get() != null) {
                throw new AssertionError("member " + name + " failed", error.get());
            }
        }

        @Override
        public void close() throws InterruptedException {
            stop.set(true);
            thread.join(60_000);
            check(!thread.isAlive(), "member " + name + " did not close within 60 s");
            checkAlive();
        }
    }

    static void twoMembers(String bootstrap, Properties extra, String protocol, String assignor) throws Exception {
        String topic = unique("java-group-" + protocol);
        String group = unique("java-group-" + protocol);
        int parts = 6;
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, parts, null);
            Map<TopicPartition, List<Long>> consumedA = new ConcurrentHashMap<>();
            Map<TopicPartition, List<Long>> consumedB = new ConcurrentHashMap<>();
            Member a = new Member("member-a", bootstrap, group, topic, extra, consumedA);
            Member b = new Member("member-b", bootstrap, group, topic, extra, consumedB);
            waitFor(() -> {
                a.checkAlive();
                b.checkAlive();
                return a.assignment.get().size() == 3 && b.assignment.get().size() == 3;
            }, WAIT, "two members to own 3 partitions each");
            Set<TopicPartition> all = new HashSet<>(a.assignment.get());
            all.addAll(b.assignment.get());
            checkEq(new HashSet<>(partitions(topic, parts)), all, "the two assignments cover every partition");
            log("balanced: a=" + a.assignment.get() + " b=" + b.assignment.get());

            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get(60, TimeUnit.SECONDS).get(group);
            checkEq(2, d.members().size(), "members described");
            checkEq(protocol.equals("consumer") ? GroupType.CONSUMER : GroupType.CLASSIC, d.type(), "group type described");
            if (assignor != null) {
                checkEq(assignor, d.partitionAssignor(), "assignor described");
            }

            produce(bootstrap, topic, parts, 100);
            waitFor(() -> count(consumedA) + count(consumedB) >= 600, WAIT, "600 records consumed by the group");
            for (TopicPartition tp : consumedA.keySet()) {
                check(a.assignment.get().contains(tp), "member a consumed " + tp + " that it does not own");
            }
            for (TopicPartition tp : consumedB.keySet()) {
                check(b.assignment.get().contains(tp), "member b consumed " + tp + " that it does not own");
            }

            b.close();
            waitFor(() -> {
                a.checkAlive();
                return a.assignment.get().size() == parts;
            }, WAIT, "member a to take over all 6 partitions after b left");
            produce(bootstrap, topic, parts, 100);
            waitFor(() -> count(consumedA) + count(consumedB) >= 1200, WAIT, "1,200 records consumed by the group");
            Thread.sleep(500); // a duplicate delivered late would show up here
            a.close();

            for (TopicPartition tp : partitions(topic, parts)) {
                List<Long> offsets = new ArrayList<>(consumedA.getOrDefault(tp, List.of()));
                offsets.addAll(consumedB.getOrDefault(tp, List.of()));
                offsets.sort(null);
                List<Long> expected = new ArrayList<>();
                for (long i = 0; i < 200; i++) {
                    expected.add(i);
                }
                checkEq(expected, offsets, "offsets of " + tp + " consumed exactly once");
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
            for (TopicPartition tp : partitions(topic, parts)) {
                checkEq(200L, committed.get(tp).offset(), "committed offset of " + tp);
            }
            log(protocol + (assignor == null ? "" : "/" + assignor) + ": 1,200 records consumed exactly once, hand-over on leave");
        }
    }

    static int count(Map<TopicPartition, List<Long>> m) {
        int n = 0;
        for (List<Long> l : m.values()) {
            n += l.size();
        }
        return n;
    }

    static void produce(String bootstrap, String topic, int parts, int perPartition) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap))) {
            for (int i = 0; i < perPartition; i++) {
                for (int part = 0; part < parts; part++) {
                    p.send(new ProducerRecord<>(topic, part, bytes("k" + i), bytes("v" + i)));
                }
            }
            p.flush();
        }
    }
}
