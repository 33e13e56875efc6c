"""The convergence simulation, short (`tests/sync_simulation.py` says what it does): devices
of three users over the whole stack, with lost responses, offline periods, a device killed
mid-push, chat SIGKILLed and restarted, the broker restarted. Every
device must end with the server's digest, every mutation with one final result, every
version with one cause.

The seed is printed; run again with `PARLEY_SIM_SEED=<seed>` to draw the same plan. The
long run is `bench/sync_soak.py`."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from parley_client import ParleyClient

from .sync_simulation import PASSWORD, FaultyStack, Plan, Simulation, describe, faulty_stack

# the stack's five services start for this module alone (on a loaded machine that is most
# of the time); the simulation itself takes about a minute
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stack_with_faults(
    infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultyStack]:
    with faulty_stack(infra, tmp_path_factory.mktemp("sim-logs")) as running:
        yield running


async def test_every_device_converges_and_every_mutation_counts_once(
    stack_with_faults: FaultyStack, tmp_path: Path
) -> None:
    seed = int(os.environ.get("PARLEY_SIM_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nconvergence simulation seed={seed} (PARLEY_SIM_SEED={seed} draws the same plan)")
    simulation = Simulation(
        stack_with_faults.stack.gateway,
        Plan(
            seed=seed,
            users=3,
            devices_per_user=2,
            steps=200,
            seconds=25.0,
        ),
        tmp_path,
        # the embedded broker keeps messages in memory: its restart drops commands and
        # answers in flight, which sync's resend sweep sends again (SYNC_MUTATION_RESEND_*)
        stack_with_faults.faults(),
    )
    try:
        outcome = await simulation.run(settle_timeout=60.0)
    finally:
        print("\n".join(simulation.log))
    print(outcome.summary())
    assert outcome.problems == [], describe(outcome)
    assert outcome.devices == 6
    assert outcome.statuses["applied"] > outcome.mutations // 2  # the run did real work
    assert outcome.lost_responses["/api/v1/sync/push"] > 0  # and lost answers on the way
    assert outcome.poke_syncs > 1  # the listening device synced on pokes, not only on connect


async def test_deleting_a_conversation_deletes_its_messages_on_every_device(
    stack_with_faults: FaultyStack, tmp_path: Path
) -> None:
    gateway = stack_with_faults.stack.gateway
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        response = await http.post(
            "/api/v1/auth/register",
            json={
                "email": f"{unique_name('cascade')}@example.com",
                "password": PASSWORD,
                "name": "C",
            },
        )
        assert response.status_code == 201, response.text
        token = response.json()["data"]["tokens"]["access_token"]
    phone, laptop = (
        ParleyClient(gateway, lambda: token, tmp_path / f"{name}.db", client_id=name)
        for name in ("phone", "laptop")
    )
    phone.put("conversation", "c1", {"title": "Trip"})
    phone.put("message", "m1", {"conversation_id": "c1", "role": "user", "content": "hi"})
    await phone.sync()
    await laptop.sync()
    assert laptop.get("message", "m1") is not None
    phone.delete("conversation", "c1")
    await phone.sync()
    await laptop.sync()
    try:
        assert laptop.get("conversation", "c1") is None
        assert laptop.get("message", "m1") is None
        assert await laptop.verify()
    finally:
        await phone.aclose()
        await laptop.aclose()
