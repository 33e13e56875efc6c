"""The convergence simulation of `tests/test_sync_convergence.py` with a bigger budget: more
users, more devices, more steps over more minutes, the same faults (lost responses, offline
periods, a device SIGKILLed mid-push, chat SIGKILLed and restarted, the broker restarted).
What it does is described in `tests/sync_simulation.py`.

Prints the seed, the outcome and every problem found; exits 1 when there is one (a problem
is a wrong result, never a slow one).

    uv run python bench/sync_soak.py [--seed N] [--users 10] [--devices 3] [--steps 3000]
                                     [--minutes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

# Run as `python bench/sync_soak.py`, this folder heads sys.path, and `import sync` (the
# service, for its migrations) would find bench/sync.py: take the folder off, put the
# checkout on.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from parley.stack.embedded import InfraUrls, infrastructure  # noqa: E402
from parley.stack.provision import ensure_database  # noqa: E402
from parley.testing import unique_name  # noqa: E402
from tests.sync_simulation import Plan, Simulation, describe, faulty_stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--devices", type=int, default=3, help="per user")
    parser.add_argument("--steps", type=int, default=3000, help="over all devices")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    print(f"sync soak: seed={args.seed} (--seed {args.seed} draws the same plan)")
    work = Path(tempfile.mkdtemp(prefix="parley-soak-"))
    with infrastructure(work / "infra", lambda name, line: None) as servers:
        database = unique_name("parley_soak")
        asyncio.run(ensure_database(servers.postgres_admin, database))
        infra = InfraUrls(
            postgres_admin=servers.postgres_admin,
            database=servers.postgres_admin.rsplit("/", 1)[0] + "/" + database,
            redis=servers.redis,
            kafka=servers.kafka,
        )
        (work / "logs").mkdir()
        with faulty_stack(infra, work / "logs") as running:
            simulation = Simulation(
                running.stack.gateway,
                Plan(
                    seed=args.seed,
                    users=args.users,
                    devices_per_user=args.devices,
                    steps=args.steps,
                    seconds=args.minutes * 60,
                ),
                work,
                running.faults(),
            )
            outcome = asyncio.run(simulation.run(settle_timeout=300.0))
    for line in simulation.log:
        print(" ", line)
    print(describe(outcome))
    print(f"service logs and device stores: {work}")
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
