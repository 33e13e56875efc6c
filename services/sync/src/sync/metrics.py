"""The sync service's own Prometheus metrics: what happened to each mutation received, so
`received = applied + merged + conflict + rejected + duplicate` (+ those still pending)."""

from __future__ import annotations

from prometheus_client import Counter

MUTATIONS_RECEIVED = Counter(
    "parley_sync_mutations_received_total", "mutations pushed, replays included", ["entity"]
)
MUTATION_OUTCOMES = Counter(
    "parley_sync_mutation_outcomes_total",
    "what became of pushed mutations: applied, merged (some fields lost to later writes), "
    "conflict, rejected, duplicate (a replayed mid)",
    ["entity", "outcome"],
)

MUTATION_RESENDS = Counter(
    "parley_sync_mutation_resends_total",
    "commands sent to their owner again because no answer came (sync.mutations.resends)",
    ["entity"],
)


def count_outcome(entity: str, outcome: str) -> None:
    MUTATION_OUTCOMES.labels(entity, outcome).inc()
