"""The convergence simulation, short (`tests/sync_simulation.py` says what it does): devices
of three users over the whole stack, with lost responses, offline periods, a device killed
mid-push, chat SIGKILLed and restarted, and the broker restarted. Every device must end with
the server's digest, every mutation with one final result, every version with one cause.

The seed is printed; run again with `PARLEY_SIM_SEED=<seed>` to draw the same plan."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.stack.components import Broker
from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.stack.provision import ensure_topics

from .conftest import Stack, running_stack
from .sync_simulation import Faults, Plan, Simulation, describe

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclasses.dataclass
class FaultyStack:
    stack: Stack
    broker: Broker


@pytest.fixture(scope="module")
def faulty_stack(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultyStack]:
    """The whole stack on a broker of its own, so restarting it touches no other test."""
    broker = Broker(free_port(), lambda *_: None)
    broker.start()
    try:
        asyncio.run(ensure_topics(broker.url))
        own = dataclasses.replace(infra, kafka=broker.url)
        with running_stack(own, tmp_path_factory.mktemp("sim-logs")) as stack:
            yield FaultyStack(stack, broker)
    finally:
        broker.stop()


def faults_of(faulty: FaultyStack) -> Faults:
    async def kill_chat() -> None:
        chat = faulty.stack.processes["chat"]
        chat.kill()
        await asyncio.sleep(1.5)  # devices keep pushing and pulling meanwhile
        await asyncio.to_thread(chat.restart)

    async def restart_broker() -> None:
        faulty.broker.stop()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(faulty.broker.start)
        await ensure_topics(faulty.broker.url)  # memory-backed: provisioned again

    return Faults(kill_chat=kill_chat, restart_broker=restart_broker)


async def test_every_device_converges_and_every_mutation_counts_once(
    faulty_stack: FaultyStack, tmp_path: Path
) -> None:
    seed = int(os.environ.get("PARLEY_SIM_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nconvergence simulation seed={seed} (PARLEY_SIM_SEED={seed} draws the same plan)")
    simulation = Simulation(
        faulty_stack.stack.gateway,
        Plan(seed=seed, users=3, devices_per_user=2, steps=220, seconds=25.0),
        tmp_path,
        faults_of(faulty_stack),
    )
    outcome = await simulation.run(settle_timeout=60.0)
    print(outcome.summary())
    for line in simulation.log:
        print(" ", line)
    assert outcome.problems == [], describe(outcome)
    assert outcome.devices == 6
    assert outcome.statuses["applied"] > outcome.mutations // 2  # the run did real work
    assert outcome.lost_responses["/api/v1/sync/push"] > 0  # and lost some answers on the way
