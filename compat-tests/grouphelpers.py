"""Shared bits of the consumer-group tests (test_groups_*.py).

- ``KFDB_ARGS`` / ``KFDB_ENV``: what the group-test modules hand to the ``kfdb`` fixture: a short
  group.initial.rebalance.delay.ms (500 ms instead of Kafka's 3 s) keeps joins fast; kfdb logs
  group handling at debug level (``KFDB_LOG``, overridable from the environment) so that a
  failure report shows what the coordinator did.
- ``Ledger``: who consumed which (partition, offset), to check exactly-once consumption.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

INITIAL_REBALANCE_DELAY_MS = 500
SESSION_TIMEOUT_MS = 6000  # kfdb's (and Kafka's) group.min.session.timeout.ms
HEARTBEAT_INTERVAL_MS = 1000
# Bound of every wait for a rebalance to settle (never asserted as a timing).
REBALANCE_WAIT_S = 30.0

KFDB_ARGS = ["--group-initial-rebalance-delay-ms", str(INITIAL_REBALANCE_DELAY_MS)]
KFDB_ENV = {"KFDB_LOG": os.environ.get("KFDB_LOG", "info,kfdb_broker=debug")}


@dataclass
class Ledger:
    """Every delivery of a message to a consumer: (member, partition, offset, value)."""

    rows: list = field(default_factory=list)
    # Positions whose commit failed (they may legitimately be delivered again to the next owner).
    uncommitted_ok: set = field(default_factory=set)

    def add(self, member: str, partition: int, offset: int, value) -> None:
        self.rows.append((member, partition, offset, value))

    def positions(self, member: str | None = None) -> set:
        return {(p, o) for m, p, o, _ in self.rows if member is None or m == member}

    def counts(self) -> Counter:
        return Counter((p, o) for _, p, o, _ in self.rows)

    def seen_all(self, expected: set) -> bool:
        return expected <= self.positions()

    def check_exactly_once(self, expected: set, what: str) -> None:
        """Every expected position delivered, nothing else, nothing twice (except positions whose
        commit failed, which the next owner of the partition may get again)."""
        counts = self.counts()
        seen = set(counts)
        missing = sorted(expected - seen)
        extra = sorted(seen - expected)
        dups = sorted(pos for pos, n in counts.items() if n > 1 and pos not in self.uncommitted_ok)
        detail = {pos: [m for m, p, o, _ in self.rows if (p, o) == pos] for pos in dups[:10]}
        assert not missing, f"{what}: {len(missing)} messages never consumed, first {missing[:20]}"
        assert not extra, f"{what}: consumed {len(extra)} positions never produced, first {extra[:20]}"
        assert not dups, f"{what}: {len(dups)} messages consumed twice, first (position: members) {detail}"


def positions_of(delivered) -> set:
    """Delivery reports [(partition, offset), ...] as a set."""
    return set(map(tuple, delivered))
