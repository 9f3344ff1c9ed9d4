package compatgo

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig(version sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	return cfg
}

// Sarama's SyncProducer with each codec (as a Kafka 4.0 client and at Sarama's default protocol
// version), then its partition consumer reads the records back with keys and headers.
func TestSaramaRoundtripCompressions(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
	for _, version := range []sarama.KafkaVersion{sarama.V4_0_0_0, sarama.DefaultVersion} {
		for name, codec := range codecs {
			t.Run(version.String()+"/"+name, func(t *testing.T) {
				topic := unique("sarama-" + name)
				createTopic(t, adm, topic, 1, nil)
				cfg := saramaConfig(version)
				cfg.Producer.Compression = codec
				p, err := sarama.NewSyncProducer([]string{broker}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				var msgs []*sarama.ProducerMessage
				for i := 0; i < 500; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0,
						Key: sarama.StringEncoder("k" + strconv.Itoa(i)), Value: sarama.StringEncoder(fmt.Sprintf("%s-%d-%080d", name, i, i)),
						Headers: []sarama.RecordHeader{{Key: []byte("seq"), Value: []byte(strconv.Itoa(i))}}})
				}
				if err := p.SendMessages(msgs); err != nil {
					t.Fatal(err)
				}
				for i, m := range msgs {
					mustEqual(t, "offset", int64(i), m.Offset)
				}
				_ = p.Close()

				c, err := sarama.NewConsumer([]string{broker}, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				timeout := time.After(wait)
				for i := 0; i < 500; i++ {
					select {
					case m := <-pc.Messages():
						mustEqual(t, "offset", int64(i), m.Offset)
						mustEqual(t, "key", "k"+strconv.Itoa(i), string(m.Key))
						mustEqual(t, "value", fmt.Sprintf("%s-%d-%080d", name, i, i), string(m.Value))
						if version != sarama.DefaultVersion || len(m.Headers) > 0 {
							mustEqual(t, "header", strconv.Itoa(i), string(m.Headers[0].Value))
						}
					case err := <-pc.Errors():
						t.Fatal(err)
					case <-timeout:
						t.Fatalf("consumed %d of 500", i)
					}
				}
			})
		}
	}
}

type saramaHandler struct {
	mu       sync.Mutex
	consumed map[int32][]int64
	claims   map[int32]bool
}

func (h *saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = map[int32]bool{}
	for _, ps := range s.Claims() {
		for _, p := range ps {
			h.claims[p] = true
		}
	}
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.consumed[m.Partition] = append(h.consumed[m.Partition], m.Offset)
		h.mu.Unlock()
		s.MarkMessage(m, "")
		s.Commit()
	}
	return nil
}

func (h *saramaHandler) counts() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.consumed {
		n += len(o)
	}
	return n, len(h.claims)
}

// Sarama's consumer group: two members split 6 partitions, 600 records consumed exactly once
// with synchronous commits, one member closes and the other takes over, 600 more.
func TestSaramaConsumerGroup(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	topic, group := unique("sarama-group"), unique("sarama-group")
	createTopic(t, adm, topic, 6, nil)
	cfg := saramaConfig(sarama.V4_0_0_0)
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second

	type member struct {
		g      sarama.ConsumerGroup
		h      *saramaHandler
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func() *member {
		g, err := sarama.NewConsumerGroup([]string{broker}, group, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(context.Background())
		m := &member{g: g, h: &saramaHandler{consumed: map[int32][]int64{}}, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			for c.Err() == nil {
				if err := g.Consume(c, []string{topic}, m.h); err != nil {
					t.Logf("consume: %v", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
		return m
	}
	stop := func(m *member) {
		m.cancel()
		<-m.done
		_ = m.g.Close()
	}
	a, b := start(), start()
	bStopped := false
	defer func() {
		stop(a)
		if !bStopped {
			stop(b)
		}
	}()
	waitUntil(t, "two members with 3 partitions each", func() bool {
		_, ca := a.h.counts()
		_, cb := b.h.counts()
		return ca == 3 && cb == 3
	})
	produceN(t, broker, topic, 6, 100)
	waitUntil(t, "600 records consumed", func() bool {
		na, _ := a.h.counts()
		nb, _ := b.h.counts()
		return na+nb >= 600
	})
	stop(b)
	bStopped = true
	waitUntil(t, "the remaining member to own all 6 partitions", func() bool {
		_, ca := a.h.counts()
		return ca == 6
	})
	produceN(t, broker, topic, 6, 100)
	waitUntil(t, "1,200 records consumed", func() bool {
		na, _ := a.h.counts()
		nb, _ := b.h.counts()
		return na+nb >= 1200
	})
	time.Sleep(time.Second)
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	for p := int32(0); p < 6; p++ {
		offs := append(append([]int64{}, a.h.consumed[p]...), b.h.consumed[p]...)
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		mustEqual(t, fmt.Sprintf("records of partition %d", p), 200, len(offs))
		for i, o := range offs {
			mustEqual(t, fmt.Sprintf("offset %d of partition %d (exactly once)", i, p), int64(i), o)
		}
	}
}
