"""Consumer groups (classic protocol) with kafkajs 2.2.4 against kfdb (scenario in js/group.js).

Three kafkajs consumers (one node process) subscribe in one group to a 6-partition topic: every
partition has exactly one owner and every message is consumed exactly once while each message is
committed (commitOffsets) after processing. One consumer disconnects (LeaveGroup): the other two
take over all partitions, nothing consumed twice, nothing lost. All disconnect; a new consumer of
the group (a consumer restart) resumes exactly at the committed offsets."""

from __future__ import annotations

from collections import Counter

from grouphelpers import KFDB_ARGS, KFDB_ENV  # noqa: F401 - read by the kfdb fixture
from jshelpers import requires_kafkajs, run_js

pytestmark = requires_kafkajs

PARTITIONS = 6
ALL = set(range(PARTITIONS))


def assert_split(assignments: dict, what: str):
    owned = [set(ps) for ps in assignments.values()]
    assert all(owned), f"{what}: a consumer owns nothing: {assignments}"
    assert sum(map(len, owned)) == PARTITIONS and set().union(*owned) == ALL, f"{what}: not a split: {assignments}"


def test_group_split_leave_resume(kfdb, topic_name):
    topic, group = topic_name(), topic_name("group")
    r = run_js("group.js", {"KFDB_BROKER": kfdb.bootstrap, "TOPIC": topic, "GROUP": group}, timeout=100)
    tup = lambda rows: {tuple(x) for x in rows}  # noqa: E731
    one, two, three = (tup(r["produced"][b]) for b in ("one", "two", "three"))
    assert len(one) == len(two) == 600 and len(three) == 60, r["produced"]

    assert_split(r["assignments"]["three"], "3 consumers")
    assert sorted(map(len, r["assignments"]["three"].values())) == [2, 2, 2], r["assignments"]
    assert_split(r["assignments"]["two"], "after c2 left")

    ok_again = tup(r["uncommittedOk"])
    ledger = r["ledger"]
    before_c4 = ledger[: len(ledger) - len(r["ledgerOfC4"])]
    counts = Counter((p, o) for _, p, o, _ in before_c4)
    assert set(counts) == one | two, (
        f"missing {sorted((one | two) - set(counts))[:20]}, extra {sorted(set(counts) - (one | two))[:20]}"
    )
    dups = {pos: n for pos, n in counts.items() if n > 1 and pos not in ok_again}
    assert not dups, f"consumed twice: {sorted(dups)[:20]} (commit errors {r['commitErrors'][:5]})"
    # While 3 members: each consumed only from its own partitions.
    for member, p, _, _ in before_c4[: r["ledgerAfterOne"]]:
        assert p in r["assignments"]["three"][member], (member, p, r["assignments"]["three"])
    assert not r["commitErrors"], r["commitErrors"][:5]
    assert r["committedAfterTwo"] == {str(p): 200 for p in ALL}

    # The restarted consumer got exactly what was produced after the last commit.
    c4 = Counter((p, o) for _, p, o, _ in r["ledgerOfC4"])
    assert set(c4) == three and all(n == 1 for n in c4.values()), sorted(c4.items())[:20]
    assert r["committedAfterThree"] == {str(p): 210 for p in ALL}
