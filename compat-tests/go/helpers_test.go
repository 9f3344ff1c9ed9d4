// Package compatgo runs franz-go (kgo, kadm) and Sarama against a broker: kfdb or Apache Kafka.
//
// The tests read the broker from KFDB_BOOTSTRAP (host:port) and are driven one by one by
// compat-tests/test_go_clients.py, which starts the broker; run alone they are skipped.
package compatgo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const wait = 60 * time.Second

func bootstrap(t *testing.T) string {
	t.Helper()
	b := os.Getenv("KFDB_BOOTSTRAP")
	if b == "" {
		t.Skip("KFDB_BOOTSTRAP is not set (run through compat-tests/test_go_clients.py)")
	}
	return b
}

func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*wait)
	t.Cleanup(cancel)
	return c
}

func adminClient(t *testing.T, broker string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates a topic and waits until its metadata lists every partition.
func createTopic(t *testing.T, adm *kadm.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	c := ctx(t)
	res, err := adm.CreateTopic(c, partitions, 1, configs, name)
	if err != nil || res.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, res.Err)
	}
	deadline := time.Now().Add(wait)
	for {
		md, err := adm.Metadata(c, name)
		if err == nil {
			if td, ok := md.Topics[name]; ok && td.Err == nil && int32(len(td.Partitions)) == partitions {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not described with %d partitions within %v", name, partitions, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readN reads the topic's partitions from the start (no group) until n records arrived, then
// polls one more second so that a record too many would be seen too.
func readN(t *testing.T, broker, topic string, partitions int32, n int, opts ...kgo.Opt) map[int32][]*kgo.Record {
	t.Helper()
	c := ctx(t)
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(broker), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	got := 0
	var extra time.Time
	for {
		if got >= n {
			if extra.IsZero() {
				extra = time.Now().Add(time.Second)
			} else if time.Now().After(extra) {
				return out
			}
		}
		pc, cancel := context.WithTimeout(c, 500*time.Millisecond)
		fs := cl.PollFetches(pc)
		cancel()
		if c.Err() != nil {
			t.Fatalf("reading %d records of %s timed out with %d", n, topic, got)
		}
		for _, e := range fs.Errors() {
			if e.Err != context.DeadlineExceeded && e.Err != context.Canceled {
				t.Fatalf("fetch error %s-%d: %v", e.Topic, e.Partition, e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], r)
			got++
		})
	}
}

func mustEqual[T comparable](t *testing.T, what string, want, got T) {
	t.Helper()
	if want != got {
		t.Fatalf("%s: want %v, got %v", what, want, got)
	}
}

func strs(rs []*kgo.Record) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(string(r.Value))
		b.WriteString(",")
	}
	return b.String()
}
