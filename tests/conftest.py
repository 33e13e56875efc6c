"""The whole public stack for the cross-service tests: auth, chat, export, sync and the gateway,
each its own uvicorn process on the real embedded infrastructure (as `test_gateway.py` starts auth
and chat), reached only through the gateway. `stack` is session-scoped: the modules that ask
for it share one (each of their tests works with accounts of its own); a module that needs a
stack to itself (faults, restarts) starts one with `running_stack`, which gets fresh schemas,
consumer groups, key prefixes and service logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import (
    ServiceProcess,
    create_schemas,
    drop_schemas,
    service_env,
    spawn_uvicorn,
    stop_all,
    unique_name,
)

STACK_INTERNAL_TOKEN = "internal-test-credential"
# A fuzzer or a replayed app sends hundreds of requests from one address in minutes: the
# limits under test elsewhere must not turn these runs into a wall of 429s.
GENEROUS = "1000000/1m"


@dataclass(frozen=True)
class Stack:
    """Base URLs of the five services (clients use `gateway`), and where their logs are."""

    gateway: str
    auth: str
    chat: str
    export: str
    sync: str
    log_dir: Path
    # each service's process, by name: a test can SIGKILL one and restart it on its port
    processes: dict[str, ServiceProcess] = field(default_factory=dict, compare=False)

    def logs(self) -> dict[str, str]:
        """Every service log's text, by file name: for a failure report."""
        return {p.name: p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log"))}


def _infra_env(prefix: str, infra: InfraUrls, schema: str | None) -> dict[str, str]:
    return service_env(
        prefix,
        infra,
        schema=schema,
        internal_token=STACK_INTERNAL_TOKEN,
        consumer_group_prefix=unique_name(prefix.lower().rstrip("_")),
    )


@contextmanager
def running_stack(infra: InfraUrls, log_dir: Path, *, timeout: float = 180.0) -> Iterator[Stack]:
    """Auth, chat, export and sync started side by side (each is told the others' ports
    up front; none needs another to start), then the gateway once they all answer
    `/health/ready` within `timeout` seconds (it reads their OpenAPI documents); stopped
    together; their schemas dropped afterwards."""
    schemas = create_schemas(infra, "auth", "chat", "export", "sync")
    try:
        with ExitStack() as running:
            processes: dict[str, ServiceProcess] = {}
            running.callback(stop_all, processes.values())
            ports = {name: free_port() for name in ("auth", "chat", "export", "sync")}
            auth, chat, export, sync = (f"http://127.0.0.1:{ports[n]}" for n in ports)
            pem = (
                Ed25519PrivateKey.generate()
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode()
            )
            backends = {
                "auth": (
                    "auth.main:create_app",
                    {
                        **_infra_env("AUTH_", infra, schemas["auth"]),
                        "AUTH_SIGNING_KEYS": json.dumps([{"private_key_pem": pem}]),
                        "AUTH_ARGON2_MEMORY_KIB": "1024",
                        "AUTH_ARGON2_TIME_COST": "1",
                        "AUTH_MAIL_SINK": "none",
                        "AUTH_TRUST_FORWARDED_FOR": "true",
                        "AUTH_LOGIN_MAX_FAILURES_PER_IP": "1000000",
                        "AUTH_PASSWORD_RESET_MAX_PER_IP": "1000000",
                    },
                ),
                "chat": (
                    "chat.main:create_app",
                    {
                        **_infra_env("CHAT_", infra, schemas["chat"]),
                        "CHAT_AUTH_URL": auth,
                        "CHAT_BLOB_URL": (log_dir / "chat-blobs").as_uri(),
                        "CHAT_INGEST_BLOB_URL": (log_dir / "sync-blobs").as_uri(),
                        "CHAT_ECHO_PACE_MS": "5",
                        "CHAT_SEND_RATE_PER_MINUTE": "100000",
                    },
                ),
                "export": (
                    "export.main:create_app",
                    {
                        **_infra_env("EXPORT_", infra, schemas["export"]),
                        "EXPORT_AUTH_URL": auth,
                        "EXPORT_CHAT_URL": chat,
                        "EXPORT_BLOB_URL": (log_dir / "export-blobs").as_uri(),
                        "EXPORT_MAX_CONCURRENT_JOBS": "1000",
                    },
                ),
                "sync": (
                    "sync.main:create_app",
                    {
                        **_infra_env("SYNC_", infra, schemas["sync"]),
                        "SYNC_AUTH_URL": auth,
                        "SYNC_CHAT_URL": chat,
                        # imports: the store chat reads large batches from; small limits so
                        # tests reach the 413s and the by-reference batches with small files
                        "SYNC_BLOB_URL": (log_dir / "sync-blobs").as_uri(),
                        "SYNC_IMPORT_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
                        "SYNC_IMPORT_INLINE_MAX_BYTES": "20000",
                        "SYNC_IMPORT_BATCH_RECORDS": "200",
                        "SYNC_IMPORT_POLL_SECONDS": "0.5",
                        # a command lost with a restarted broker is sent again within seconds
                        "SYNC_MUTATION_RESEND_AFTER_SECONDS": "4",
                    },
                ),
            }
            for name, (app, env) in backends.items():
                processes[name] = spawn_uvicorn(name, app, env, log_dir, port=ports[name])
            for process in processes.values():  # four start at once: more time than one alone
                process.wait_ready(timeout=timeout)
            processes["gateway"] = spawn_uvicorn(
                "gateway",
                "gateway.main:create_app",
                {
                    "GATEWAY_AUTH_URL": auth,
                    "GATEWAY_CHAT_URL": chat,
                    "GATEWAY_EXPORT_URL": export,
                    "GATEWAY_SYNC_URL": sync,
                    "GATEWAY_REDIS_URL": infra.redis,
                    "GATEWAY_REDIS_KEY_PREFIX": unique_name("gw") + ":",
                    "GATEWAY_LOG_LEVEL": "WARNING",
                    "GATEWAY_INTERNAL_TOKEN": STACK_INTERNAL_TOKEN,
                    "GATEWAY_RATE_LIMIT_PER_IP": GENEROUS,
                    "GATEWAY_RATE_LIMIT_PER_USER": GENEROUS,
                    "GATEWAY_RATE_LIMIT_SIGN_IN": GENEROUS,
                    "GATEWAY_CONNECT_TIMEOUT_SECONDS": "2",
                    "GATEWAY_TIMEOUT_SECONDS": "20",
                },
                log_dir,
            )
            processes["gateway"].wait_ready(timeout=timeout)
            yield Stack(
                gateway=processes["gateway"].url,
                auth=auth,
                chat=chat,
                export=export,
                sync=sync,
                log_dir=log_dir,
                processes=processes,
            )
    finally:
        drop_schemas(infra, schemas.values())


@pytest.fixture(scope="session")
def stack(infra: InfraUrls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The five services of the public API as real processes, started once for every
    module that asks for them (each test signs up users of its own)."""
    with running_stack(infra, tmp_path_factory.mktemp("stack-logs")) as running:
        yield running
