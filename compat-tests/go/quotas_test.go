package compatgo

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func quotaEntity(parts ...string) []kmsg.AlterClientQuotasRequestEntryEntity {
	var out []kmsg.AlterClientQuotasRequestEntryEntity
	for i := 0; i < len(parts); i += 2 {
		e := kmsg.NewAlterClientQuotasRequestEntryEntity()
		e.Type = parts[i]
		name := parts[i+1]
		e.Name = &name
		out = append(out, e)
	}
	return out
}

func alterQuota(t *testing.T, cl *kgo.Client, entity []kmsg.AlterClientQuotasRequestEntryEntity, key string, value float64, remove bool) int16 {
	t.Helper()
	req := kmsg.NewPtrAlterClientQuotasRequest()
	entry := kmsg.NewAlterClientQuotasRequestEntry()
	entry.Entity = entity
	op := kmsg.NewAlterClientQuotasRequestEntryOp()
	op.Key, op.Value, op.Remove = key, value, remove
	entry.Ops = append(entry.Ops, op)
	req.Entries = append(req.Entries, entry)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Entries[0].ErrorCode
}

type component struct {
	kind  string
	match int8
	name  *string
}

// describeQuotas answers the error code and, per entity ("user=a,client-id=b"), its values.
func describeQuotas(t *testing.T, cl *kgo.Client, strict bool, components ...component) (int16, map[string]map[string]float64) {
	t.Helper()
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Strict = strict
	for _, c := range components {
		rc := kmsg.NewDescribeClientQuotasRequestComponent()
		rc.EntityType, rc.MatchType, rc.Match = c.kind, kmsg.QuotasMatchType(c.match), c.name
		req.Components = append(req.Components, rc)
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, e := range resp.Entries {
		var parts []string
		for _, p := range e.Entity {
			name := "<default>"
			if p.Name != nil {
				name = *p.Name
			}
			parts = append(parts, p.Type+"="+name)
		}
		sort.Strings(parts)
		values := map[string]float64{}
		for _, v := range e.Values {
			values[v.Key] = v.Value
		}
		out[strings.Join(parts, ",")] = values
	}
	return resp.ErrorCode, out
}

// TestKadmClientQuotas: AlterClientQuotas and DescribeClientQuotas at the protocol level — exact,
// default and any-name filter components, strict filters, and the codes Kafka answers for bad
// entities, keys, values and filters.
func TestKadmClientQuotas(t *testing.T) {
	broker := bootstrap(t)
	cl := rawClient(t, broker)
	user, client := unique("quser"), unique("qclient")
	for _, set := range []struct {
		entity []kmsg.AlterClientQuotasRequestEntryEntity
		key    string
		value  float64
	}{
		{quotaEntity("user", user), "consumer_byte_rate", 2048},
		{quotaEntity("user", user, "client-id", client), "producer_byte_rate", 1024},
		{quotaEntity("user", user, "client-id", client), "request_percentage", 25.5},
	} {
		if code := alterQuota(t, cl, set.entity, set.key, set.value, false); code != 0 {
			t.Fatalf("set %s: %v", set.key, kerr.ErrorForCode(code))
		}
	}
	defer func() {
		alterQuota(t, cl, quotaEntity("user", user), "consumer_byte_rate", 0, true)
		alterQuota(t, cl, quotaEntity("user", user, "client-id", client), "producer_byte_rate", 0, true)
		alterQuota(t, cl, quotaEntity("user", user, "client-id", client), "request_percentage", 0, true)
	}()
	onlyUser := "user=" + user
	pair := "client-id=" + client + ",user=" + user
	waitUntil(t, "the quotas described", func() bool {
		code, got := describeQuotas(t, cl, false, component{"user", 0, &user})
		return code == 0 && len(got) == 2 && got[onlyUser]["consumer_byte_rate"] == 2048 &&
			got[pair]["producer_byte_rate"] == 1024 && got[pair]["request_percentage"] == 25.5
	})
	if _, got := describeQuotas(t, cl, true, component{"user", 0, &user}); len(got) != 1 || got[onlyUser] == nil {
		t.Fatalf("strict exact user: want only %s, got %v", onlyUser, got)
	}
	if _, got := describeQuotas(t, cl, true, component{"user", 0, &user}, component{"client-id", 2, nil}); len(got) != 1 || got[pair] == nil {
		t.Fatalf("user and any client id: want only %s, got %v", pair, got)
	}
	if _, got := describeQuotas(t, cl, false, component{"client-id", 0, &client}); len(got) != 1 || got[pair] == nil {
		t.Fatalf("exact client id: want only %s, got %v", pair, got)
	}
	if _, got := describeQuotas(t, cl, false, component{"user", 1, nil}); got[onlyUser] != nil || got[pair] != nil {
		t.Fatalf("default user: named users listed: %v", got)
	}
	for _, bad := range []struct {
		what       string
		want       int16
		components []component
	}{
		{"exact without a name", kerr.InvalidRequest.Code, []component{{"user", 0, nil}}},
		{"default with a name", kerr.InvalidRequest.Code, []component{{"user", 1, &user}}},
		{"a type twice", kerr.InvalidRequest.Code, []component{{"user", 2, nil}, {"user", 2, nil}}},
		{"ip with user", kerr.InvalidRequest.Code, []component{{"ip", 2, nil}, {"user", 2, nil}}},
		{"unknown type", kerr.UnsupportedVersion.Code, []component{{"group", 2, nil}}},
	} {
		if code, _ := describeQuotas(t, cl, false, bad.components...); code != bad.want {
			t.Fatalf("describe with %s: want %v, got %v", bad.what, kerr.ErrorForCode(bad.want), kerr.ErrorForCode(code))
		}
	}
	for _, bad := range []struct {
		what   string
		entity []kmsg.AlterClientQuotasRequestEntryEntity
		key    string
		value  float64
	}{
		{"an unknown key", quotaEntity("user", user), "no_such_quota", 1},
		{"a fractional byte rate", quotaEntity("user", user), "producer_byte_rate", 1.5},
		{"a zero rate", quotaEntity("user", user), "producer_byte_rate", 0},
		{"an ip key on a user", quotaEntity("user", user), "connection_creation_rate", 1},
		{"ip with user", quotaEntity("ip", "10.0.0.1", "user", user), "connection_creation_rate", 1},
		{"an unknown entity type", quotaEntity("group", "g"), "producer_byte_rate", 1},
		{"an empty name", quotaEntity("user", ""), "producer_byte_rate", 1},
	} {
		if code := alterQuota(t, cl, bad.entity, bad.key, bad.value, false); code != kerr.InvalidRequest.Code {
			t.Fatalf("alter with %s: want INVALID_REQUEST, got %v", bad.what, kerr.ErrorForCode(code))
		}
	}
	if _, got := describeQuotas(t, cl, true, component{"user", 0, &user}); got[onlyUser]["consumer_byte_rate"] != 2048 || len(got[onlyUser]) != 1 {
		t.Fatalf("refused alterations changed the quotas: %v", got)
	}
}

// TestControllerMutationQuota: a client id allowed 1 partition mutation per second (a burst of
// about 11) creating 30 one-partition topics in one CreateTopics v7 request gets some created and
// the rest refused with THROTTLING_QUOTA_EXCEEDED (KIP-599, strict mode), and a throttle time.
func TestControllerMutationQuota(t *testing.T) {
	broker := bootstrap(t)
	adm := adminClient(t, broker)
	admin := rawClient(t, broker)
	id := unique("mutator")
	if code := alterQuota(t, admin, quotaEntity("client-id", id), "controller_mutation_rate", 1, false); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	defer alterQuota(t, admin, quotaEntity("client-id", id), "controller_mutation_rate", 0, true)
	waitUntil(t, "the quota described", func() bool {
		_, got := describeQuotas(t, admin, true, component{"client-id", 0, &id})
		return got["client-id="+id]["controller_mutation_rate"] == 1
	})
	waitBriefly()
	cl := rawClient(t, broker, kgo.ClientID(id))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	prefix := unique("mutation")
	for i := 0; i < 30; i++ {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = prefix + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		rt.NumPartitions, rt.ReplicationFactor = 1, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	var created, throttled []string
	for _, rt := range resp.Topics {
		switch rt.ErrorCode {
		case 0:
			created = append(created, rt.Topic)
		case kerr.ThrottlingQuotaExceeded.Code:
			throttled = append(throttled, rt.Topic)
		default:
			t.Fatalf("topic %s: %v", rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	if len(created) == 0 || len(throttled) == 0 || resp.ThrottleMillis <= 0 {
		t.Fatalf("want some topics created and some throttled with a throttle time: created %d, throttled %d, throttle %d ms",
			len(created), len(throttled), resp.ThrottleMillis)
	}
	t.Logf("created %d, throttled %d, throttle %d ms", len(created), len(throttled), resp.ThrottleMillis)
	listed, err := adm.ListTopics(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range throttled {
		if listed.Has(name) {
			t.Fatalf("throttled topic %s exists", name)
		}
	}
	if _, err := adm.DeleteTopics(ctx(t), created...); err != nil {
		t.Fatal(err)
	}
}

// waitBriefly lets every broker's copy of the quotas catch up (kfdb: 0.5 s; Kafka: its metadata).
func waitBriefly() { time.Sleep(1500 * time.Millisecond) }

func rawClient(t *testing.T, broker string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(broker)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
