package kfdbcompat.clients;

import static kfdbcompat.clients.Util.*;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/** The AdminClient calls operators and frameworks use. */
public final class AdminScenarios {
    private AdminScenarios() {}

    /**
     * Topics: create (again: TopicExistsException), describe by name and by topic id, create
     * partitions, describe configs, incremental alter (set and delete), describe cluster, delete by
     * name and by id (then unknown).
     */
    public static void admin_topics_configs_cluster(String bootstrap) throws Exception {
        String t1 = unique("java-admin-a");
        String t2 = unique("java-admin-b");
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            DescribeClusterResult cluster = admin.describeCluster();
            check(cluster.nodes().get(60, TimeUnit.SECONDS).size() >= 1, "describeCluster nodes");
            check(cluster.controller().get(60, TimeUnit.SECONDS) != null, "describeCluster controller");
            check(cluster.clusterId().get(60, TimeUnit.SECONDS) != null, "describeCluster cluster id");

            createTopic(admin, t1, 2, Map.of("retention.ms", "3600000"));
            createTopic(admin, t2, 1, null);
            try {
                admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(t1, 1, (short) 1))).all().get(60, TimeUnit.SECONDS);
                throw new AssertionError("creating an existing topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException, "expected TopicExistsException, got " + e.getCause());
            }
            check(admin.listTopics().names().get(60, TimeUnit.SECONDS).containsAll(Set.of(t1, t2)), "listTopics has both topics");

            TopicDescription byName = admin.describeTopics(List.of(t1)).allTopicNames().get(60, TimeUnit.SECONDS).get(t1);
            checkEq(2, byName.partitions().size(), "partitions described by name");
            Uuid id = byName.topicId();
            check(id != null && !id.equals(Uuid.ZERO_UUID), "topic id described");
            TopicDescription byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get(60, TimeUnit.SECONDS).get(id);
            checkEq(t1, byId.name(), "topic described by id");
            checkEq(1, byId.partitions().get(0).replicas().size(), "replicas of partition 0");
            check(byId.partitions().get(0).leader() != null, "leader of partition 0");

            admin.createPartitions(Map.of(t1, NewPartitions.increaseTo(5))).all().get(60, TimeUnit.SECONDS);
            waitFor(() -> {
                try {
                    return admin.describeTopics(List.of(t1)).allTopicNames().get().get(t1).partitions().size() == 5;
                } catch (Exception e) {
                    return false;
                }
            }, WAIT, "5 partitions after createPartitions");

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t1);
            Config cfg = admin.describeConfigs(List.of(res)).all().get(60, TimeUnit.SECONDS).get(res);
            checkEq("3600000", cfg.get("retention.ms").value(), "retention.ms");
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source(), "retention.ms source");
            checkEq("delete", cfg.get("cleanup.policy").value(), "cleanup.policy default");
            checkEq(ConfigEntry.ConfigSource.DEFAULT_CONFIG, cfg.get("cleanup.policy").source(), "cleanup.policy source");

            Collection<AlterConfigOp> ops = List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE));
            admin.incrementalAlterConfigs(Map.of(res, ops)).all().get(60, TimeUnit.SECONDS);
            waitFor(() -> {
                try {
                    Config c = admin.describeConfigs(List.of(res)).all().get().get(res);
                    return c.get("cleanup.policy").value().equals("compact") && c.get("retention.ms").value().equals("604800000");
                } catch (Exception e) {
                    return false;
                }
            }, WAIT, "cleanup.policy=compact and retention.ms back to its default 604800000");

            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(cluster.nodes().get().iterator().next().id()));
            Config bcfg = admin.describeConfigs(List.of(broker)).all().get(60, TimeUnit.SECONDS).get(broker);
            check(bcfg.entries().size() > 0, "broker configs described");

            admin.deleteTopics(List.of(t2)).all().get(60, TimeUnit.SECONDS);
            admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get(60, TimeUnit.SECONDS);
            waitFor(() -> {
                try {
                    Set<String> names = admin.listTopics().names().get();
                    return !names.contains(t1) && !names.contains(t2);
                } catch (Exception e) {
                    return false;
                }
            }, WAIT, "both topics gone after delete by name and by id");
            try {
                admin.describeTopics(List.of(t2)).allTopicNames().get(60, TimeUnit.SECONDS);
                throw new AssertionError("describing a deleted topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof UnknownTopicOrPartitionException, "expected UnknownTopicOrPartitionException, got " + e.getCause());
            }
            try {
                admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get(60, TimeUnit.SECONDS);
                throw new AssertionError("describing a deleted topic id succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof UnknownTopicIdException, "expected UnknownTopicIdException, got " + e.getCause());
            }
        }
        log("topics, configs and cluster administered");
    }

    /** listOffsets earliest/latest/maxTimestamp/forTimestamp, deleteRecords (earliest moves). */
    public static void admin_offsets_delete_records(String bootstrap) throws Exception {
        String topic = unique("java-admin-offsets");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 1, null);
            long t0 = System.currentTimeMillis() - 100_000;
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(bootstrap))) {
                for (int i = 0; i < 50; i++) {
                    // the maximum timestamp is at offset 30
                    long ts = i == 30 ? t0 + 50_000 : t0 + 100L * i;
                    p.send(new ProducerRecord<>(topic, 0, ts, bytes("k"), bytes("v" + i)));
                }
                p.flush();
            }
            checkEq(0L, offset(admin, tp, OffsetSpec.earliest()).offset(), "earliest");
            checkEq(50L, offset(admin, tp, OffsetSpec.latest()).offset(), "latest");
            ListOffsetsResult.ListOffsetsResultInfo max = offset(admin, tp, OffsetSpec.maxTimestamp());
            checkEq(30L, max.offset(), "max timestamp offset");
            checkEq(t0 + 50_000, max.timestamp(), "max timestamp");
            checkEq(12L, offset(admin, tp, OffsetSpec.forTimestamp(t0 + 1150)).offset(), "offset for a timestamp");

            var low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(20))).lowWatermarks().get(tp).get(60, TimeUnit.SECONDS);
            checkEq(20L, low.lowWatermark(), "low watermark after deleteRecords");
            checkEq(20L, offset(admin, tp, OffsetSpec.earliest()).offset(), "earliest after deleteRecords");
            checkEq(50L, offset(admin, tp, OffsetSpec.latest()).offset(), "latest after deleteRecords");
            var rest = readAll(bootstrap, List.of(tp), null).get(tp);
            checkEq(30, rest.size(), "records left after deleteRecords");
            checkEq(20L, rest.get(0).offset(), "first offset left");
        }
        log("listOffsets and deleteRecords as expected");
    }

    static ListOffsetsResult.ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(60, TimeUnit.SECONDS);
    }

    /**
     * Groups: a committed group is listed and described; its offsets are altered and read back;
     * deleting it while a member is active fails with GroupNotEmptyException, after the member
     * left it succeeds and the group is gone.
     */
    @SuppressWarnings("deprecation")
    public static void admin_groups(String bootstrap) throws Exception {
        String topic = unique("java-admin-groups");
        String group = unique("java-admin-group");
        TopicPartition tp0 = new TopicPartition(topic, 0);
        TopicPartition tp1 = new TopicPartition(topic, 1);
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 2, null);
            GroupScenarios.produce(bootstrap, topic, 2, 10);
            KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(bootstrap, group));
            try {
                c.subscribe(List.of(topic));
                ConsumerScenarios.pollAtLeast(c, 20);
                c.commitSync();
                Set<String> listed = new HashSet<>();
                for (ConsumerGroupListing l : admin.listConsumerGroups().all().get(60, TimeUnit.SECONDS)) {
                    listed.add(l.groupId());
                }
                check(listed.contains(group), "listConsumerGroups contains the group");
                var d = admin.describeConsumerGroups(List.of(group)).all().get(60, TimeUnit.SECONDS).get(group);
                checkEq(1, d.members().size(), "members described");
                checkEq(2, d.members().iterator().next().assignment().topicPartitions().size(), "member's assignment");
                Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
                checkEq(10L, offs.get(tp0).offset(), "committed offset of partition 0");
                checkEq(10L, offs.get(tp1).offset(), "committed offset of partition 1");
                try {
                    admin.deleteConsumerGroups(List.of(group)).all().get(60, TimeUnit.SECONDS);
                    throw new AssertionError("deleting a group with a member succeeded");
                } catch (ExecutionException e) {
                    check(e.getCause() instanceof GroupNotEmptyException, "expected GroupNotEmptyException, got " + e.getCause());
                }
            } finally {
                c.close();
            }
            admin.alterConsumerGroupOffsets(group, Map.of(tp0, new OffsetAndMetadata(3), tp1, new OffsetAndMetadata(7))).all().get(60, TimeUnit.SECONDS);
            Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
            checkEq(3L, offs.get(tp0).offset(), "altered offset of partition 0");
            checkEq(7L, offs.get(tp1).offset(), "altered offset of partition 1");
            try (KafkaConsumer<byte[], byte[]> c2 = new KafkaConsumer<>(consumerProps(bootstrap, group))) {
                c2.assign(List.of(tp0));
                checkEq(3L, ConsumerScenarios.pollAtLeast(c2, 1).get(0).offset(), "a consumer resumes at the altered offset");
            }
            admin.deleteConsumerGroups(List.of(group)).all().get(60, TimeUnit.SECONDS);
            Set<String> listed = new HashSet<>();
            for (ConsumerGroupListing l : admin.listConsumerGroups().all().get(60, TimeUnit.SECONDS)) {
                listed.add(l.groupId());
            }
            check(!listed.contains(group), "the deleted group is not listed");
            checkEq(0, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS).size(),
                    "offsets of the deleted group");
        }
        log("groups listed, described, offsets altered, deleted");
    }

    /** listTransactions and describeProducers see an open transaction and an idempotent producer. */
    public static void admin_transactions_producers(String bootstrap) throws Exception {
        String topic = unique("java-admin-txn");
        String txnId = unique("java-admin-txn-id");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            createTopic(admin, topic, 1, null);
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(TransactionScenarios.txnProps(bootstrap, txnId))) {
                p.initTransactions();
                p.beginTransaction();
                p.send(new ProducerRecord<>(topic, 0, bytes("k"), bytes("v"))).get(60, TimeUnit.SECONDS);
                List<String> ids = new ArrayList<>();
                TransactionListing mine = null;
                for (TransactionListing l : admin.listTransactions().all().get(60, TimeUnit.SECONDS)) {
                    ids.add(l.transactionalId());
                    if (l.transactionalId().equals(txnId)) {
                        mine = l;
                    }
                }
                check(mine != null, "listTransactions lists " + txnId + " (got " + ids + ")");
                checkEq("Ongoing", mine.state().toString(), "state of the open transaction");
                var desc = admin.describeTransactions(List.of(txnId)).all().get(60, TimeUnit.SECONDS).get(txnId);
                check(desc.topicPartitions().contains(tp), "describeTransactions lists the partition");
                DescribeProducersResult.PartitionProducerState st = admin.describeProducers(List.of(tp)).partitionResult(tp).get(60, TimeUnit.SECONDS);
                checkEq(1, st.activeProducers().size(), "active producers of the partition");
                checkEq(mine.producerId(), st.activeProducers().get(0).producerId(), "producer id described");
                check(st.activeProducers().get(0).currentTransactionStartOffset().isPresent(), "the open transaction's start offset");
                checkEq(0L, st.activeProducers().get(0).currentTransactionStartOffset().getAsLong(), "transaction start offset");
                p.commitTransaction();
            }
        }
        log("listTransactions, describeTransactions and describeProducers as expected");
    }
}
