package kfdbcompat.clients;

import static kfdbcompat.clients.Util.*;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;

/** Transactions: commit, abort, read_committed, sendOffsetsToTransaction, fencing. */
public final class TransactionScenarios {
    private TransactionScenarios() {}

    static Properties txnProps(String bootstrap, String txnId) {
        Properties p = producerProps(bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        return p;
    }

    /**
     * Committed, aborted, committed transactions over 2 partitions: read_committed sees exactly
     * the committed records (in order, offsets past the markers), read_uncommitted sees all of
     * them; endOffsets under read_committed is the end of the log once nothing is open, and stops
     * at the first record of an open transaction while one is.
     */
    public static void txn_commit_abort_read_committed(String bootstrap) throws Exception {
        String topic = unique("java-txn");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 2, null);
        }
        List<TopicPartition> tps = partitions(topic, 2);
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(txnProps(bootstrap, unique("java-txn-id")))) {
            p.initTransactions();
            String[] outcomes = {"commit", "abort", "commit"};
            for (int round = 0; round < 3; round++) {
                p.beginTransaction();
                for (int i = 0; i < 10; i++) {
                    p.send(new ProducerRecord<>(topic, i % 2, bytes("k"), bytes(outcomes[round] + "-" + round + "-" + i)));
                }
                if (outcomes[round].equals("commit")) {
                    p.commitTransaction();
                } else {
                    p.flush();
                    p.abortTransaction();
                }
            }
            // an open transaction: read_committed must stop before it
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, bytes("k"), bytes("open"))).get(60, TimeUnit.SECONDS);
            Properties rc = new Properties();
            rc.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(withDefaults(bootstrap, rc))) {
                Map<TopicPartition, Long> end = c.endOffsets(tps);
                // partition 0: 5 committed + marker, 5 aborted + marker, 5 committed + marker = 18; the open record at 18
                checkEq(18L, end.get(tps.get(0)), "read_committed end offset of partition 0 with a transaction open");
                checkEq(18L, end.get(tps.get(1)), "read_committed end offset of partition 1");
            }
            p.commitTransaction();
        }
        Properties rc = new Properties();
        rc.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        var committed = readAll(bootstrap, tps, rc);
        var uncommitted = readAll(bootstrap, tps, null);
        for (TopicPartition tp : tps) {
            List<String> values = new ArrayList<>();
            for (ConsumerRecord<byte[], byte[]> r : committed.get(tp)) {
                values.add(str(r.value()));
            }
            List<String> expected = new ArrayList<>();
            for (int round : new int[] {0, 2}) {
                for (int i = tp.partition(); i < 10; i += 2) {
                    expected.add("commit-" + round + "-" + i);
                }
            }
            if (tp.partition() == 0) {
                expected.add("open");
            }
            checkEq(expected, values, "read_committed values of " + tp);
            checkEq(12L, committed.get(tp).get(5).offset(), "offset of the first record of the third transaction in " + tp);
            checkEq(tp.partition() == 0 ? 16 : 15, uncommitted.get(tp).size(), "read_uncommitted record count of " + tp);
        }
        log("read_committed sees committed records only; read_uncommitted sees the aborted ones too");
    }

    /**
     * Consume-transform-produce: a transactional producer copies an input topic to an output topic
     * and commits the consumer group's offsets with sendOffsetsToTransaction. An aborted round
     * leaves the group's offsets and the output unchanged; a committed round moves both.
     */
    public static void txn_send_offsets(String bootstrap) throws Exception {
        String in = unique("java-txn-in");
        String out = unique("java-txn-out");
        String group = unique("java-txn-group");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, in, 1, null);
            createTopic(admin, out, 1, null);
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap))) {
                for (int i = 0; i < 20; i++) {
                    p.send(new ProducerRecord<>(in, 0, bytes("k" + i), bytes("v" + i)));
                }
                p.flush();
            }
            Properties cp = consumerProps(bootstrap, group);
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            TopicPartition inTp = new TopicPartition(in, 0);
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp);
                 KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(txnProps(bootstrap, unique("java-ctp")))) {
                p.initTransactions();
                c.subscribe(List.of(in));
                List<ConsumerRecord<byte[], byte[]>> batch = ConsumerScenarios.pollAtLeast(c, 20);
                checkEq(20, batch.size(), "records polled from the input");
                for (String outcome : List.of("abort", "commit")) {
                    p.beginTransaction();
                    for (ConsumerRecord<byte[], byte[]> r : batch) {
                        p.send(new ProducerRecord<>(out, 0, r.key(), bytes(str(r.value()).toUpperCase())));
                    }
                    p.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(20)), c.groupMetadata());
                    if (outcome.equals("abort")) {
                        p.abortTransaction();
                        OffsetAndMetadata o = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                                .get(60, TimeUnit.SECONDS).get(inTp);
                        checkEq(null, o, "the group's offset after an aborted transaction");
                    } else {
                        p.commitTransaction();
                    }
                }
            }
            OffsetAndMetadata o = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS).get(inTp);
            checkEq(20L, o.offset(), "the group's offset after the committed transaction");
            Properties rc = new Properties();
            rc.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            List<ConsumerRecord<byte[], byte[]>> got = readAll(bootstrap, partitions(out, 1), rc).get(new TopicPartition(out, 0));
            checkEq(20, got.size(), "committed output records");
            for (int i = 0; i < 20; i++) {
                checkEq("V" + i, str(got.get(i).value()), "output value " + i);
            }
        }
        log("consume-transform-produce: abort left offsets and output unchanged, commit moved both");
    }

    /**
     * A second producer with the same transactional.id fences the first: the first producer's
     * open transaction is aborted (its record is never visible to read_committed) and its next
     * send/commit fails with ProducerFencedException; the second producer commits.
     */
    public static void txn_fencing(String bootstrap) throws Exception {
        String topic = unique("java-fence");
        String txnId = unique("java-fence-id");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 1, null);
        }
        KafkaProducer<byte[], byte[]> zombie = new KafkaProducer<>(txnProps(bootstrap, txnId));
        zombie.initTransactions();
        zombie.beginTransaction();
        zombie.send(new ProducerRecord<>(topic, 0, bytes("k"), bytes("zombie-1"))).get(60, TimeUnit.SECONDS);
        try (KafkaProducer<byte[], byte[]> fresh = new KafkaProducer<>(txnProps(bootstrap, txnId))) {
            fresh.initTransactions();
            boolean fenced = false;
            try {
                zombie.send(new ProducerRecord<>(topic, 0, bytes("k"), bytes("zombie-2"))).get(60, TimeUnit.SECONDS);
                zombie.commitTransaction();
            } catch (Exception e) {
                // (no catch clause names the exception classes: their hierarchy differs between client versions)
                fenced = isFenced(e);
                if (!fenced) {
                    throw e;
                }
            }
            check(fenced, "the zombie producer was not fenced");
            fresh.beginTransaction();
            fresh.send(new ProducerRecord<>(topic, 0, bytes("k"), bytes("fresh")));
            fresh.commitTransaction();
        } finally {
            zombie.close(java.time.Duration.ZERO);
        }
        Properties rc = new Properties();
        rc.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        List<String> values = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : readAll(bootstrap, partitions(topic, 1), rc).get(new TopicPartition(topic, 0))) {
            values.add(str(r.value()));
        }
        checkEq(List.of("fresh"), values, "read_committed values after fencing");
        log("the zombie was fenced, its open transaction aborted, the new instance committed");
    }

    /** ProducerFencedException or InvalidProducerEpochException, possibly wrapped. */
    static boolean isFenced(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ProducerFencedException || t instanceof InvalidProducerEpochException) {
                return true;
            }
        }
        return false;
    }

    static Properties withDefaults(String bootstrap, Properties extra) {
        Properties p = consumerProps(bootstrap, null);
        p.putAll(extra);
        return p;
    }

    static Set<TopicPartition> set(TopicPartition... tps) {
        return Set.of(tps);
    }
}
