"""The convergence simulation of offline-first devices over the real stack, shared by
`tests/test_sync_convergence.py` (a short run) and `bench/sync_soak.py` (a long one).

Devices (`parley_client.ParleyClient`, each with its own SQLite file) of several users follow
a plan drawn from one seeded `random.Random`: local changes to every entity kind (including
edits of the same records on several devices of a user), syncs, offline periods. On the way,
push responses are dropped after the server took the push (the client retries blindly), some
pull responses too, one device is SIGKILLed while its push is in flight and restarts from its
SQLite queue, and the stack's faults (chat SIGKILLed and restarted, the broker restarted) are
injected by the caller through `Faults`.

At the end every device syncs until nothing is queued, and the outcome says whether every
device's digest equals the server's, whether every mutation got exactly one final result,
and whether every version of every record came from exactly one applied mutation (a mutation
applied twice leaves a version nobody was told about; one lost leaves its device waiting)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from parley.stack.components import Broker
from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.stack.provision import ensure_topics
from parley_client import Backoff, Mutation, ParleyClient, SyncUnavailable

PASSWORD = "correct horse battery staple 7"
# entities whose versions move only by the mutations aimed at them (no cascade touches
# them): for these, the versions the devices were told about must be exactly 1..final
SELF_CONTAINED = ("folder", "memory", "preferences", "document")
TODOS = "todos"


@dataclass(frozen=True)
class Plan:
    """What the simulation does, drawn from the seed."""

    seed: int
    users: int = 3
    devices_per_user: int = 2
    steps: int = 240  # over all devices
    seconds: float = 25.0  # the time the steps are spread over
    lose_push: float = 0.1  # share of push responses dropped after the server took the push
    lose_pull: float = 0.03
    offline: float = 0.08  # chance a step takes a device offline for a while


@dataclass
class Faults:
    """The stack faults the caller injects at fractions of the run (None: not injected)."""

    kill_chat: Callable[[], Awaitable[None]] | None = None
    restart_broker: Callable[[], Awaitable[None]] | None = None
    kill_chat_at: float = 0.4
    restart_broker_at: float = 0.65
    kill_device_at: float = 0.25


# The embedded broker keeps topics in memory: after its restart, a service asking for a
# topic before it is provisioned again gets one auto-created with 4 partitions while its
# producer still knows 6, and what it sends to partitions 4-5 is never read. Provisioned
# with the auto-created count from the start, the layout survives the restart.
BROKER_PARTITIONS = 4


@dataclass
class FaultyStack:
    """The whole stack (tests/conftest.py's `running_stack`) on a broker of its own, so
    restarting it touches nobody else; `faults()` kills chat and restarts the broker."""

    stack: Any  # tests.conftest.Stack
    broker: Broker

    def faults(self) -> Faults:
        async def kill_chat() -> None:
            chat = self.stack.processes["chat"]
            chat.kill()
            await asyncio.sleep(1.5)  # devices keep pushing and pulling meanwhile
            await asyncio.to_thread(chat.restart)

        async def restart_broker() -> None:
            self.broker.stop()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.broker.start)
            await ensure_topics(self.broker.url, partitions=BROKER_PARTITIONS)

        return Faults(kill_chat=kill_chat, restart_broker=restart_broker)


@contextmanager
def faulty_stack(infra: InfraUrls, log_dir: Path) -> Iterator[FaultyStack]:
    from tests.conftest import running_stack

    broker = Broker(free_port(), lambda *_: None)
    broker.start()
    try:
        asyncio.run(ensure_topics(broker.url, partitions=BROKER_PARTITIONS))
        with running_stack(replace(infra, kafka=broker.url), log_dir) as stack:
            yield FaultyStack(stack, broker)
    finally:
        broker.stop()


class FlakyNetwork(httpx.AsyncBaseTransport):
    """The device's network: off while the device is offline; drops some responses after
    the server handled the request (as a connection reset on the way back would)."""

    def __init__(self, rng: random.Random, lose_push: float, lose_pull: float) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.rng = rng
        self.lose = {"/api/v1/sync/push": lose_push, "/api/v1/sync/pull": lose_pull}
        self.offline = False
        self.held = False  # every device held off the network at once (a quiet moment)
        self.lost: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.offline or self.held:
            raise httpx.ConnectError("offline (simulated)", request=request)
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        if self.rng.random() < self.lose.get(path, 0.0):
            await response.aread()
            await response.aclose()
            self.lost[path] += 1
            raise httpx.ReadError("response lost on the way back (simulated)", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Device:
    name: str
    user: int
    db: Path
    token: str
    rng: random.Random
    network: FlakyNetwork
    client: ParleyClient | None = None
    enqueued: dict[int, Mutation] = field(default_factory=dict)
    final: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_error: str = ""
    syncs: int = 0
    unavailable: int = 0
    restarted: int = 0


@dataclass
class Outcome:
    seed: int
    devices: int
    mutations: int
    statuses: Counter[str]
    lost_responses: Counter[str]
    problems: list[str]
    digests: dict[str, tuple[int, str]]
    server_digests: dict[int, tuple[int, str]]
    seconds: float
    poke_syncs: int

    def summary(self) -> str:
        return (
            f"seed={self.seed} devices={self.devices} mutations={self.mutations} "
            f"results={dict(self.statuses)} lost_responses={dict(self.lost_responses)} "
            f"records={ {u: d[0] for u, d in self.server_digests.items()} } "
            f"poke_syncs={self.poke_syncs} {self.seconds:.1f}s problems={len(self.problems)}"
        )


# The device killed mid-push: a process of its own that pushes its queue, holds the
# response back once the server has the push, and prints "pushed" (then the parent kills it).
KILLED_MID_PUSH = """
import asyncio, sys, httpx
from parley_client import ParleyClient

class HoldBack(httpx.AsyncBaseTransport):
    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()
    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/sync/push"):
            await response.aread()
            print("pushed", flush=True)
            await asyncio.sleep(3600)
        return response

async def main():
    base, token, db = sys.argv[1:4]
    # whatever waits for a result is asked for again: there is always something to push
    client = ParleyClient(
        base, lambda: token, db, transport=HoldBack(), wait=0, resend_pending_after=0
    )
    await client.push()

asyncio.run(main())
"""


class Simulation:
    def __init__(self, gateway: str, plan: Plan, workdir: Path, faults: Faults | None = None):
        self.gateway = gateway
        self.plan = plan
        self.workdir = workdir
        self.faults = faults or Faults()
        self.rng = random.Random(plan.seed)
        self.devices: list[Device] = []
        self.log: list[str] = []
        self.poke_syncs = 0  # syncs the listening device made on a poke or a (re)connect
        self._started = time.monotonic()

    # -- setting up -------------------------------------------------------------------

    async def _sign_in(self, http: httpx.AsyncClient, email: str, device: str) -> str:
        response = await http.post(
            "/api/v1/auth/login",
            json={"email": email, "password": PASSWORD, "device_info": {"device_name": device}},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["tokens"]["access_token"])

    async def _set_up(self) -> None:
        async with httpx.AsyncClient(base_url=self.gateway, timeout=30) as http:
            for user in range(self.plan.users):
                email = f"sim-{self.plan.seed}-{user}-{os.urandom(4).hex()}@example.com"
                response = await http.post(
                    "/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD, "name": f"User {user}"},
                )
                assert response.status_code == 201, response.text
                for n in range(self.plan.devices_per_user):
                    name = f"u{user}d{n}"
                    rng = random.Random(self.rng.random())
                    device = Device(
                        name=name,
                        user=user,
                        db=self.workdir / f"{name}.db",
                        token=await self._sign_in(http, email, name),
                        rng=rng,
                        network=FlakyNetwork(rng, self.plan.lose_push, self.plan.lose_pull),
                    )
                    self._open(device)
                    self.devices.append(device)

    def _open(self, device: Device) -> None:
        """(Re)open the device's client on its SQLite file, as the app does at start."""

        def record(mutation: Mutation, result: dict[str, Any]) -> None:
            device.final[mutation.mid].append(result)

        device.client = ParleyClient(
            self.gateway,
            lambda: device.token,
            device.db,
            client_id=f"{device.name}-{self.plan.seed}",
            on_result=record,
            transport=device.network,
            wait=2.0,
            backoff=Backoff(attempts=4, base=0.05, cap=1.0),
            resend_pending_after=4.0,
            durable=False,
        )

    # -- the plan ---------------------------------------------------------------------

    def _steps(self) -> dict[str, list[tuple[str, Any]]]:
        """Each device's steps, drawn from the seed up front (so the same seed makes the
        same changes whatever the timing): ('ops', [...]), ('sync', None), ('offline', s)."""
        plan: dict[str, list[tuple[str, Any]]] = {d.name: [] for d in self.devices}
        live: dict[tuple[int, str], list[str]] = defaultdict(list)  # (user, entity) → ids
        counter = Counter[str]()
        for _ in range(self.plan.steps):
            device = self.rng.choice(self.devices)
            roll = self.rng.random()
            if roll < self.plan.offline:
                plan[device.name].append(("offline", self.rng.uniform(0.5, 3.0)))
            elif roll < 0.35:
                plan[device.name].append(("sync", None))
            else:
                ops = [self._op(device, live, counter) for _ in range(self.rng.randint(1, 4))]
                plan[device.name].append(("ops", [op for op in ops if op is not None]))
        for steps in plan.values():
            steps.append(("sync", None))
        return plan

    def _op(
        self, device: Device, live: dict[tuple[int, str], list[str]], counter: Counter[str]
    ) -> tuple[str, str, str, dict[str, Any] | None, str | None] | None:
        """One change: (op, entity, id, body, collection)."""
        rng, user = self.rng, device.user

        def new_id(prefix: str) -> str:
            counter[prefix] += 1
            return f"{prefix}-{device.name}-{counter[prefix]}"

        def pick(entity: str) -> str | None:
            ids = live[(user, entity)]
            return rng.choice(ids) if ids else None

        def forget(entity: str, id_: str) -> None:
            live[(user, entity)].remove(id_)

        kind = rng.choices(
            ["conversation", "message", "folder", "memory", "preferences", "document"],
            weights=[3, 6, 2, 2, 2, 4],
        )[0]
        n = counter["n"] = counter["n"] + 1
        if kind == "preferences":
            fields = rng.choice(
                [
                    {"theme_mode": rng.choice(["system", "light", "dark"])},
                    {"font_size": rng.randint(10, 24)},
                    {"compact_mode": rng.random() < 0.5, "chat_persona": f"persona {n}"},
                ]
            )
            return ("patch", "preferences", "me", fields, None)
        existing = pick(kind)
        action = rng.random()
        if existing is None or action < 0.4:
            id_ = new_id(kind[0])
            body: dict[str, Any]
            if kind == "conversation":
                body = {"title": f"chat {n}", "tags": [f"t{rng.randint(1, 5)}"]}
            elif kind == "message":
                conversation = pick("conversation")
                if conversation is None:
                    return None
                body = {"conversation_id": conversation, "role": "user", "content": f"text {n}"}
            elif kind == "folder":
                body = {"title": f"folder {n}", "color": rng.choice(["red", "blue", "green"])}
            elif kind == "memory":
                body = {"question": f"q {n}", "answer": f"a {n}", "tags": ["sim"]}
            else:
                body = {"text": f"todo {n}", "done": False, "priority": rng.randint(1, 3)}
            live[(user, kind)].append(id_)
            return ("put", kind, id_, body, TODOS if kind == "document" else None)
        collection = TODOS if kind == "document" else None
        if action < 0.52:
            forget(kind, existing)
            return ("delete", kind, existing, None, collection)
        fields = {
            "conversation": rng.choice(
                [{"title": f"renamed {n}"}, {"is_favorite": rng.random() < 0.5}]
            ),
            "message": {"content": f"edited {n}"},
            "folder": {"title": f"folder {n}"},
            "memory": rng.choice([{"answer": f"answer {n}"}, {"rating": rng.randint(0, 5)}]),
            "document": rng.choice([{"done": rng.random() < 0.5}, {"text": f"todo {n}"}]),
        }[kind]
        return ("patch", kind, existing, fields, collection)

    # -- running ----------------------------------------------------------------------

    def _apply(self, device: Device, op: tuple[str, str, str, Any, str | None]) -> None:
        verb, entity, id_, body, collection = op
        client = device.client
        assert client is not None
        if verb == "put":
            mutation = client.put(entity, id_, body, collection=collection)
        elif verb == "patch":
            mutation = client.patch(entity, id_, body, collection=collection)
        else:
            mutation = client.delete(entity, id_, collection=collection)
        device.enqueued[mutation.mid] = mutation

    async def _sync(self, device: Device) -> None:
        assert device.client is not None
        try:
            await device.client.sync()
            device.syncs += 1
        except SyncUnavailable as exc:
            device.unavailable += 1
            device.last_error = str(exc)

    async def _run_device(self, device: Device, steps: list[tuple[str, Any]], pace: float) -> None:
        for kind, arg in steps:
            await asyncio.sleep(device.rng.uniform(0, 2 * pace))
            async with device.busy:  # a kill waits for the step to end, and vice versa
                if kind == "ops":
                    for op in arg:
                        self._apply(device, op)
                elif kind == "sync":
                    await self._sync(device)
                else:
                    device.network.offline = True
                    await asyncio.sleep(arg)
                    device.network.offline = False

    async def _kill_mid_push(self, device: Device) -> None:
        async with device.busy:
            await self._kill_mid_push_now(device)

    async def _kill_mid_push_now(self, device: Device) -> None:
        """Close the device (its app goes away), let a process of its own push its queue
        from the same SQLite file, SIGKILL that process once the server has the push (the
        answer never reaches it), and open the device again from what the file holds."""
        assert device.client is not None
        device.network.offline = False
        self._apply(device, ("put", "folder", f"f-killed-{device.name}", {"title": "k"}, None))
        await device.client.aclose()
        device.client = None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            KILLED_MID_PUSH,
            self.gateway,
            device.token,
            str(device.db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
            await proc.wait()
        if line.strip() != b"pushed":
            stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
            raise AssertionError(f"the doomed device never pushed: {line!r} {stderr[-2000:]}")
        self._note(f"{device.name} killed mid-push, restarting from its queue")
        device.restarted += 1
        self._open(device)

    async def _faults(self) -> None:
        seconds = self.plan.seconds
        events: list[tuple[float, str, Callable[[], Awaitable[None]]]] = [
            (self.faults.kill_device_at, "device", lambda: self._kill_mid_push(self.devices[0]))
        ]
        if self.faults.kill_chat is not None:
            events.append((self.faults.kill_chat_at, "chat", self.faults.kill_chat))
        if self.faults.restart_broker is not None:
            restart = self.faults.restart_broker
            events.append((self.faults.restart_broker_at, "broker", lambda: self._quietly(restart)))
        started = time.monotonic()
        for at, name, inject in sorted(events, key=lambda e: e[0]):
            await asyncio.sleep(max(0.0, started + at * seconds - time.monotonic()))
            self._note(f"fault: {name}")
            await inject()
            self._note(f"fault: {name} over")

    async def _quietly(self, fault: Callable[[], Awaitable[None]]) -> None:
        """`fault` at a quiet moment: every device held off the network, and a moment for
        what is on its way to land. The embedded broker keeps its messages in memory, so a
        restart loses what it holds (a real Kafka keeps it): the quiet keeps that small."""
        for device in self.devices:
            device.network.held = True
        await asyncio.sleep(1.5)
        try:
            await fault()
        finally:
            for device in self.devices:
                device.network.held = False

    async def _settle(self, timeout: float) -> None:
        """Everyone online, nothing lost on the way: sync until no device has anything
        queued, then once more each so every device has seen every change."""
        for device in self.devices:
            device.network.offline = False
            device.network.lose = {}
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.gather(*(self._sync(d) for d in self.devices))
            waiting = {d.name: len(d.client.pending()) for d in self.devices if d.client}
            if not any(waiting.values()):
                break
            errors = {d.name: d.last_error[:160] for d in self.devices if d.last_error}
            self._note(f"still queued: {waiting}; last errors: {errors}")
            for device in self.devices:
                device.last_error = ""
            if time.monotonic() > deadline:
                raise AssertionError(f"still queued after {timeout}s: {waiting}")
            await asyncio.sleep(0.5)
        for device in self.devices:
            assert device.client is not None
            await device.client.sync()

    def _note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self._started:6.1f}s {what}")

    async def run(self, settle_timeout: float = 90.0) -> Outcome:
        started = self._started = time.monotonic()
        await self._set_up()
        self._note(f"{len(self.devices)} devices signed in")
        steps = self._steps()
        pace = self.plan.seconds / max(1, max(len(s) for s in steps.values()))
        tasks = [
            asyncio.create_task(self._run_device(d, steps[d.name], pace)) for d in self.devices
        ]
        # the last device also keeps the sync socket open: it syncs on every poke too
        listener = self.devices[-1]
        assert listener.client is not None
        assert listener is not self.devices[0]
        listening = asyncio.create_task(
            listener.client.listen(on_sync=lambda _: self._count_poke_sync())
        )
        try:
            await self._faults()
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, listening]:
                task.cancel()
            await asyncio.gather(listening, return_exceptions=True)
        self._note("plan done: settling")
        await self._settle(settle_timeout)
        self._note("settled: checking")
        outcome = await self._check(time.monotonic() - started)
        for device in self.devices:
            if device.client is not None:
                await device.client.aclose()
        return outcome

    # -- the verdict ------------------------------------------------------------------

    def _count_poke_sync(self) -> None:
        self.poke_syncs += 1

    async def _check(self, seconds: float) -> Outcome:
        problems: list[str] = []
        statuses: Counter[str] = Counter()
        digests: dict[str, tuple[int, str]] = {}
        server: dict[int, tuple[int, str]] = {}
        told: dict[tuple[int, str, str], set[int]] = defaultdict(set)
        for device in self.devices:
            client = device.client
            assert client is not None
            if client.pending():
                problems.append(f"{device.name}: {len(client.pending())} mutations never finished")
            for mid, mutation in device.enqueued.items():
                results = device.final.get(mid, [])
                if len(results) != 1:
                    problems.append(
                        f"{device.name} mid {mid} ({mutation.key}): {len(results)} final results"
                    )
                for result in results:
                    statuses[result["status"]] += 1
                    if result["status"] == "applied" and result.get("version") is not None:
                        key = mutation.key
                        told[(device.user, key.entity, f"{key.collection}/{key.id}")].add(
                            int(result["version"])
                        )
            local = client.digest()
            digests[device.name] = (local.count, local.digest)
            remote = await client.server_digest()
            server[device.user] = (remote.count, remote.digest)
            if (local.count, local.digest) != (remote.count, remote.digest):
                problems.append(
                    f"{device.name}: digest {local.count}/{local.digest[:12]} "
                    f"!= server {remote.count}/{remote.digest[:12]}"
                )
        # every version of a self-contained record was announced to exactly the device
        # whose mutation made it: a version nobody was told about is an extra effect
        for device in self.devices:
            assert device.client is not None
            for record in device.client.store.records():
                key = record.key
                if key.entity not in SELF_CONTAINED:
                    continue
                seen = told.get((device.user, key.entity, f"{key.collection}/{key.id}"), set())
                expected = set(range(1, record.version + 1))
                if seen and seen != expected:
                    problems.append(
                        f"{device.name} {key.entity} {key.collection}/{key.id}: versions "
                        f"{sorted(expected - seen)} came from no applied mutation "
                        f"(told {sorted(seen)}, server at {record.version})"
                    )
        lost: Counter[str] = Counter()
        for device in self.devices:
            lost.update(device.network.lost)
        return Outcome(
            seed=self.plan.seed,
            devices=len(self.devices),
            mutations=sum(len(d.enqueued) for d in self.devices),
            statuses=statuses,
            lost_responses=lost,
            problems=sorted(set(problems)),
            digests=digests,
            server_digests=server,
            seconds=seconds,
            poke_syncs=self.poke_syncs,
        )


def describe(outcome: Outcome) -> str:
    """The outcome as JSON lines, for a failure message or the soak's report."""
    return json.dumps(
        {
            "summary": outcome.summary(),
            "problems": outcome.problems[:50],
            "digests": outcome.digests,
        },
        indent=1,
    )
