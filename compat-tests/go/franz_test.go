package compatgo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Each codec: 1,000 records with keys and headers from franz-go's default (idempotent,
// acks=all) producer; offsets dense from 0 in production order; read back identical.
func TestFranzRoundtripCompressions(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := unique("franz-" + name)
			createTopic(t, adm, topic, 1, nil)
			cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ProducerBatchCompression(codec),
				kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			for i := 0; i < 1000; i++ {
				recs = append(recs, &kgo.Record{
					Key: []byte("k" + strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%s value %d %0100d", name, i, i)),
					Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}},
				})
			}
			res := cl.ProduceSync(ctx(t), recs...)
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				mustEqual(t, "offset", int64(i), r.Record.Offset)
			}
			got := readN(t, broker, topic, 1, 1000)[0]
			mustEqual(t, "records", 1000, len(got))
			for i, r := range got {
				mustEqual(t, "offset", int64(i), r.Offset)
				mustEqual(t, "key", "k"+strconv.Itoa(i), string(r.Key))
				mustEqual(t, "value", string(recs[i].Value), string(r.Value))
				mustEqual(t, "header", strconv.Itoa(i), string(r.Headers[0].Value))
			}
		})
	}
}

// groupMember consumes in a franz-go consumer group, committing after each poll; rebalances
// wait until the polled records are committed (BlockRebalanceOnPoll), so nothing is consumed twice.
type groupMember struct {
	cl       *kgo.Client
	mu       sync.Mutex
	consumed map[int32][]int64
	owned    map[int32]bool // from the client's assigned/revoked/lost callbacks
	done     chan struct{}
}

func (m *groupMember) ownedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.owned)
}

func startMember(t *testing.T, broker, group, topic string, opts ...kgo.Opt) *groupMember {
	m := &groupMember{consumed: map[int32][]int64{}, owned: map[int32]bool{}, done: make(chan struct{})}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range ps[topic] {
				if add {
					m.owned[p] = true
				} else {
					delete(m.owned, p)
				}
			}
		}
	}
	all := append([]kgo.Opt{kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)),
		kgo.OnPartitionsLost(change(false)), kgo.SeedBrokers(broker), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(time.Second)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				m.mu.Lock()
				m.consumed[r.Partition] = append(m.consumed[r.Partition], r.Offset)
				m.mu.Unlock()
			})
			if err := cl.CommitUncommittedOffsets(context.Background()); err != nil && !errors.Is(err, kgo.ErrClientClosed) {
				t.Logf("commit: %v", err)
			}
			// processed and committed: only now may a rebalance take partitions away
			cl.AllowRebalance()
		}
	}()
	return m
}

func (m *groupMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, o := range m.consumed {
		n += len(o)
	}
	return n
}

func (m *groupMember) close() {
	m.cl.Close() // leaves the group
	<-m.done
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func produceN(t *testing.T, broker, topic string, partitions int32, perPartition int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := 0; i < perPartition; i++ {
		for p := int32(0); p < partitions; p++ {
			recs = append(recs, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("p%d-%d", p, i))})
		}
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// twoMemberGroup: two members split 6 partitions, 600 records are consumed exactly once with
// commits, one member leaves and the other takes over, 600 more are consumed; the group's
// committed offsets are at the end of every partition.
func twoMemberGroup(t *testing.T, opts ...kgo.Opt) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	topic, group := unique("franz-group"), unique("franz-group")
	createTopic(t, adm, topic, 6, nil)
	a := startMember(t, broker, group, topic, opts...)
	b := startMember(t, broker, group, topic, opts...)
	bClosed := false
	defer func() {
		a.close()
		if !bClosed {
			b.close()
		}
	}()
	waitUntil(t, "two members with 3 partitions each", func() bool {
		return a.ownedCount() == 3 && b.ownedCount() == 3
	})
	produceN(t, broker, topic, 6, 100)
	waitUntil(t, "600 records consumed", func() bool { return a.count()+b.count() >= 600 })
	b.close()
	bClosed = true
	waitUntil(t, "the remaining member to own all 6 partitions", func() bool { return a.ownedCount() == 6 })
	produceN(t, broker, topic, 6, 100)
	waitUntil(t, "1,200 records consumed", func() bool { return a.count()+b.count() >= 1200 })
	time.Sleep(time.Second)
	for p := int32(0); p < 6; p++ {
		offs := append(append([]int64{}, a.consumed[p]...), b.consumed[p]...)
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		mustEqual(t, fmt.Sprintf("records of partition %d", p), 200, len(offs))
		for i, o := range offs {
			mustEqual(t, fmt.Sprintf("offset %d of partition %d (exactly once)", i, p), int64(i), o)
		}
	}
	committed, err := adm.FetchOffsets(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 6; p++ {
		o, ok := committed.Lookup(topic, p)
		if !ok {
			t.Fatalf("no committed offset for partition %d", p)
		}
		mustEqual(t, fmt.Sprintf("committed offset of partition %d", p), int64(200), o.At)
	}
}

func TestFranzGroupCooperativeSticky(t *testing.T) {
	twoMemberGroup(t, kgo.Balancers(kgo.CooperativeStickyBalancer()))
}

// KIP-848: franz-go's next-gen group protocol (server-side assignment).
func TestFranzGroupKIP848(t *testing.T) {
	twoMemberGroup(t, kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
}

// GroupTransactSession: consume-transform-produce of 300 records in transactions of whatever
// each poll returned; the output (read_committed) has each transformed input exactly once and
// the group's offsets are at the input's end.
func TestFranzGroupTransactSession(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	in, out, group := unique("franz-eos-in"), unique("franz-eos-out"), unique("franz-eos")
	createTopic(t, adm, in, 3, nil)
	createTopic(t, adm, out, 3, nil)
	produceN(t, broker, in, 3, 100)

	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(broker), kgo.TransactionalID(unique("franz-eos-txn")),
		kgo.TransactionTimeout(60*time.Second), kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequireStableFetchOffsets(), kgo.DefaultProduceTopic(out), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.SessionTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	c := ctx(t)
	done := 0
	for done < 300 {
		if c.Err() != nil {
			t.Fatalf("transformed %d of 300 before the deadline", done)
		}
		pc, cancel := context.WithTimeout(c, 2*time.Second)
		fs := sess.PollFetches(pc)
		cancel()
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, &kgo.Record{Partition: r.Partition, Value: append([]byte("out-"), r.Value...)})
		})
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := sess.Client().ProduceSync(c, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		committed, err := sess.End(c, kgo.TryCommit)
		if err != nil {
			t.Fatal(err)
		}
		if committed {
			done += len(recs)
		}
	}
	mustEqual(t, "transformed records", 300, done)
	got := readN(t, broker, out, 3, 300, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for p := int32(0); p < 3; p++ {
		mustEqual(t, fmt.Sprintf("output records of partition %d", p), 100, len(got[p]))
		for i, r := range got[p] {
			mustEqual(t, "output value", fmt.Sprintf("out-p%d-%d", p, i), string(r.Value))
		}
	}
	offs, err := adm.FetchOffsets(c, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		o, _ := offs.Lookup(in, p)
		mustEqual(t, fmt.Sprintf("group offset of input partition %d", p), int64(100), o.At)
	}
}

// kadm: topics (create, list, describe configs, alter configs, create partitions, delete),
// offsets (start/end, delete records) and groups (commit, fetch, describe, list, delete).
func TestKadmAdministration(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	c := ctx(t)
	topic, group := unique("kadm"), unique("kadm-group")
	ret := "3600000"
	createTopic(t, adm, topic, 2, map[string]*string{"retention.ms": &ret})
	if res, _ := adm.CreateTopic(c, 2, 1, nil, topic); !errors.Is(res.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("creating an existing topic: want TOPIC_ALREADY_EXISTS, got %v", res.Err)
	}
	listed, err := adm.ListTopics(c)
	if err != nil || !listed.Has(topic) {
		t.Fatalf("ListTopics: %v, has=%v", err, listed.Has(topic))
	}
	rcs, err := adm.DescribeTopicConfigs(c, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cfg := range rc.Configs {
		if cfg.Key == "retention.ms" {
			found = true
			mustEqual(t, "retention.ms", "3600000", cfg.MaybeValue())
		}
	}
	if !found {
		t.Fatal("retention.ms not described")
	}
	longer := "7200000"
	if _, err := adm.AlterTopicConfigs(c, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &longer}}, topic); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "retention.ms=7200000", func() bool {
		rcs, err := adm.DescribeTopicConfigs(c, topic)
		if err != nil {
			return false
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			return false
		}
		for _, cfg := range rc.Configs {
			if cfg.Key == "retention.ms" {
				return cfg.MaybeValue() == "7200000"
			}
		}
		return false
	})
	if _, err := adm.CreatePartitions(c, 1, topic); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "3 partitions", func() bool {
		md, err := adm.Metadata(c, topic)
		return err == nil && len(md.Topics[topic].Partitions) == 3
	})

	produceN(t, broker, topic, 3, 10)
	ends, err := adm.ListEndOffsets(c, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) { mustEqual(t, "end offset", int64(10), o.Offset) })
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4})
	if _, err := adm.DeleteRecords(c, del); err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(c, topic)
	if err != nil {
		t.Fatal(err)
	}
	s0, _ := starts.Lookup(topic, 0)
	mustEqual(t, "start offset after DeleteRecords", int64(4), s0.Offset)
	s1, _ := starts.Lookup(topic, 1)
	mustEqual(t, "start offset of another partition", int64(0), s1.Offset)

	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: topic, Partition: 1, At: 7, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(c, group, commit); err != nil {
		t.Fatal(err)
	}
	fetched, err := adm.FetchOffsets(c, group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := fetched.Lookup(topic, 1)
	if !ok {
		t.Fatal("committed offset not fetched")
	}
	mustEqual(t, "fetched committed offset", int64(7), o.At)
	groups, err := adm.ListGroups(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[group]; !ok {
		t.Fatalf("group %s not listed in %v", group, groups.Groups())
	}
	described, err := adm.DescribeGroups(c, group)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "state of a group with offsets and no members", "Empty", described[group].State)
	deleted, err := adm.DeleteGroups(c, group)
	if err != nil || deleted[group].Err != nil {
		t.Fatalf("DeleteGroups: %v %v", err, deleted[group].Err)
	}
	fetched, err = adm.FetchOffsets(c, group)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fetched.Lookup(topic, 1); ok {
		t.Fatal("offsets of a deleted group are still fetched")
	}

	if _, err := adm.DeleteTopics(c, topic); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the topic to be gone", func() bool {
		l, err := adm.ListTopics(c)
		return err == nil && !l.Has(topic)
	})
}

// A compacted topic refuses records without a key (INVALID_RECORD) and takes keyed ones.
func TestFranzCompactedTopicRefusesKeylessRecords(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	topic := unique("franz-compacted")
	compact := "compact"
	createTopic(t, adm, topic, 1, map[string]*string{"cleanup.policy": &compact})
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("a keyless record on a compacted topic: want INVALID_RECORD, got %v", err)
	}
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Key: []byte("k"), Value: []byte("keyed")}).FirstErr(); err != nil {
		t.Fatalf("a keyed record on a compacted topic: %v", err)
	}
}
