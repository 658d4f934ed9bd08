"""The deploy files agree with the code they deploy.

Docker does not run on this machine, so compose.yaml, the Dockerfiles and deploy/ are checked
by reading them: every setting a container needs is set, every name set is a real setting
(``darkroom.common.settings.env_names``), and the pieces point at each other (ports, hosts,
credentials, consumer groups). Each check is one row per service where it can be.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from darkroom.common.broker import media_consumers
from darkroom.common.events import CATALOG
from darkroom.common.settings import (
    SERVICE_SETTINGS,
    CommonSettings,
    DedupSettings,
    IngestSettings,
    MetadataSettings,
    NotifySettings,
    SealingSettings,
    ServiceSettings,
    TaggingSettings,
    env_names,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


@dataclass(frozen=True)
class Service:
    name: str
    settings: type[ServiceSettings]
    port: int
    consumer: bool
    own_required: tuple[str, ...] = ()

    @property
    def required(self) -> set[str]:
        """The settings a container cannot leave to their defaults (which mean this machine)."""
        own = f"DARKROOM_{self.name.upper()}"
        return {*SHARED_REQUIRED, f"{own}_DATABASE_URL", f"{own}_HTTP_PORT", *self.own_required}

    @property
    def settings_names(self) -> set[str]:
        return set(env_names(self.settings))


SHARED_REQUIRED = (
    "DARKROOM_KAFKA_BOOTSTRAP_SERVERS",
    "DARKROOM_S3_ENDPOINT",
    "DARKROOM_S3_ACCESS_KEY",
    "DARKROOM_S3_SECRET_KEY",
    "DARKROOM_OTLP_ENDPOINT",
    "DARKROOM_HTTP_HOST",
)

SERVICES = (
    Service(
        "ingest", IngestSettings, 8000, consumer=False, own_required=("DARKROOM_SEALING_KEYS",)
    ),
    Service("metadata", MetadataSettings, 8001, consumer=True),
    Service("dedup", DedupSettings, 8002, consumer=True),
    Service("tagging", TaggingSettings, 8003, consumer=True),
    Service(
        "notify",
        NotifySettings,
        8004,
        consumer=True,
        own_required=(
            "DARKROOM_NOTIFY_SMTP_HOST",
            "DARKROOM_NOTIFY_SMTP_PORT",
            "DARKROOM_SEALING_KEYS",
        ),
    ),
)
CONSUMERS = tuple(s for s in SERVICES if s.consumer)
ALL_SETTINGS = set().union(*(s.settings_names for s in SERVICES))
INFRASTRUCTURE = ("kafka", "minio", "postgres", "otel-collector", "jaeger")
METRICS = (
    "darkroom_uploads_total",
    "darkroom_upload_bytes_total",
    "darkroom_files_total",
    "darkroom_step_duration_seconds",
    "darkroom_upload_to_processed_seconds",
    "darkroom_consumer_lag",
    "darkroom_dlq_messages_total",
    "darkroom_outbox_pending",
)


def by_name(services: tuple[Service, ...]) -> Any:
    return pytest.mark.parametrize("svc", services, ids=[s.name for s in services])


# ---------------------------------------------------------------------------- readers


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def compose_service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def compose_env(name: str) -> dict[str, str]:
    """A compose service's environment, YAML anchors merged, as the container sees it."""
    env = compose_service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        objects += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    return tuple(objects)


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"deploy/k8s must hold exactly one {kind} named {name}"
    return found[0]


def configmap() -> dict[str, str]:
    return k8s_object("ConfigMap", "darkroom-settings")["data"]


def consumers_per_replica(svc: Service) -> int:
    """A replica's consumers of its busiest topic: new uploads, for a service with a pool."""
    workers = svc.settings.model_fields.get("workers")
    if workers is None:
        return 1
    env = {e["name"]: e.get("value") for e in k8s_container(svc).get("env", [])}
    return media_consumers(int(env.get(f"DARKROOM_{svc.name.upper()}_WORKERS", workers.default)))


def k8s_container(svc: Service) -> dict[str, Any]:
    deployment = k8s_object("Deployment", svc.name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def k8s_env_names(container: dict[str, Any]) -> set[str]:
    """Every variable a container gets: its env list and the ConfigMaps it loads whole."""
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref, f"envFrom {source} is not a ConfigMap; name secrets one by one"
        names |= set(k8s_object("ConfigMap", ref["name"])["data"])
    return names


def dockerfile(svc: Service) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "services" / svc.name / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def instructions(svc: Service, keyword: str) -> list[str]:
    return [args for kw, args in dockerfile(svc) if kw == keyword]


def seconds(duration: str | int) -> float:
    """A compose duration ("30s", "1m30s") in seconds."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, f"unreadable duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def default(settings: type[CommonSettings], env: str) -> Any:
    field = dict(zip(env_names(settings), settings.model_fields.values(), strict=True))[env]
    value = field.default
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def local_defaults(settings: type[CommonSettings]) -> set[str]:
    """Settings whose default names this machine: wrong inside any container."""
    return {
        env
        for env in env_names(settings)
        if isinstance(default(settings, env), str)
        and re.search(r"127\.0\.0\.1|localhost", default(settings, env))
    }


# ---------------------------------------------------------------------------- the table


def test_the_table_covers_every_service_settings_class() -> None:
    assert {s.settings for s in SERVICES} == set(SERVICE_SETTINGS)
    for svc in SERVICES:
        assert svc.required <= svc.settings_names, f"{svc.name}: table names a non-setting"
        assert default(svc.settings, f"DARKROOM_{svc.name.upper()}_HTTP_PORT") == svc.port


# ---------------------------------------------------------------------------- compose.yaml


@pytest.mark.parametrize("name", [*(s.name for s in SERVICES), *INFRASTRUCTURE])
def test_compose_runs(name: str) -> None:
    assert name in compose()["services"], f"compose.yaml has no service {name!r}"


def test_compose_images_are_pinned_and_name_no_registry() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin a tag, not {image!r}"
        first = image.split("/")[0]
        assert "/" not in image or not re.search(r"[.:]|^localhost$", first), (
            f"{name}: {image!r} names a registry host"
        )


@by_name(SERVICES)
def test_compose_env_sets_what_a_container_needs(svc: Service) -> None:
    missing = (svc.required | local_defaults(svc.settings)) - set(compose_env(svc.name))
    assert not missing, f"{svc.name} would run with its on-this-machine defaults: {missing}"


@by_name(SERVICES)
def test_compose_env_names_only_real_settings(svc: Service) -> None:
    unknown = set(compose_env(svc.name)) - svc.settings_names
    assert not unknown, f"{svc.name} sets variables no setting reads (typos?): {unknown}"


@by_name(SERVICES)
def test_compose_env_is_accepted_by_the_settings_class(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("DARKROOM_")]:
        monkeypatch.delenv(key)
    for key, value in compose_env(svc.name).items():
        monkeypatch.setenv(key, value)
    settings = svc.settings()
    assert settings.http_port == svc.port
    assert settings.http_host == "0.0.0.0"


@by_name(SERVICES)
def test_compose_env_points_at_the_stack(svc: Service) -> None:
    env, services = compose_env(svc.name), compose()["services"]
    own = f"DARKROOM_{svc.name.upper()}"

    for server in env["DARKROOM_KAFKA_BOOTSTRAP_SERVERS"].split(","):
        assert server.split(":")[0] in services, f"{svc.name}: Kafka at unknown {server}"
    for key, target in (
        (f"{own}_DATABASE_URL", "postgres"),
        ("DARKROOM_S3_ENDPOINT", "minio"),
        ("DARKROOM_OTLP_ENDPOINT", "otel-collector"),
    ):
        assert urlsplit(env[key]).hostname == target, f"{svc.name}: {key} should reach {target}"

    database = urlsplit(env[f"{own}_DATABASE_URL"])
    assert database.path == f"/darkroom_{svc.name}", f"{svc.name} must use its own database"
    postgres = compose_env("postgres")
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    minio = compose_env("minio")
    assert env["DARKROOM_S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
    assert env["DARKROOM_S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_compose_postgres_creates_every_service_database() -> None:
    (init,) = compose_service("postgres")["configs"]
    assert init["target"].startswith("/docker-entrypoint-initdb.d/")
    sql = compose()["configs"][init["source"]]["content"]
    for svc in SERVICES:
        assert f"CREATE DATABASE darkroom_{svc.name} " in sql, f"no database for {svc.name}"


@by_name(SERVICES)
def test_compose_service_is_supervised(svc: Service) -> None:
    service = compose_service(svc.name)
    assert service["restart"] == "unless-stopped"
    assert service["build"] == {"context": ".", "dockerfile": f"services/{svc.name}/Dockerfile"}
    for dependency in ("kafka", "postgres", "minio"):
        condition = service["depends_on"][dependency]["condition"]
        assert condition == "service_healthy", f"{svc.name} starts before {dependency} is up"
    grace = default(svc.settings, "DARKROOM_SHUTDOWN_GRACE_SECONDS")
    assert seconds(service["stop_grace_period"]) > grace, "SIGKILL would cut the drain short"


def test_the_local_stack_hands_the_sealing_key_only_to_the_services_that_seal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = importlib.util.spec_from_file_location("supervise", ROOT / "deploy/local/supervise.py")
    assert spec is not None and spec.loader is not None
    supervise = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "supervise", supervise)  # its dataclasses look it up
    spec.loader.exec_module(supervise)
    sealing = {svc.name for svc in SERVICES if issubclass(svc.settings, SealingSettings)}
    assert sealing == supervise.SEALING
    assert {svc.name for svc in SERVICES if "DARKROOM_SEALING_KEYS" in svc.required} == sealing


@by_name(SERVICES)
def test_compose_healthcheck_asks_the_service_itself(svc: Service) -> None:
    check = compose_service(svc.name)["healthcheck"]
    command = " ".join(check["test"])
    assert re.search(rf"127\.0\.0\.1:{svc.port}/(healthz|readyz)\b", command), command


def test_compose_every_awaited_dependency_has_a_healthcheck() -> None:
    for name, service in compose()["services"].items():
        depends = service.get("depends_on") or {}
        for dependency, spec in depends.items() if isinstance(depends, dict) else ():
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in compose_service(dependency), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


@by_name(CONSUMERS)
def test_compose_consumer_can_be_scaled(svc: Service) -> None:
    service = compose_service(svc.name)
    assert "container_name" not in service, f"--scale {svc.name}=4 needs no fixed name"
    assert "ports" not in service, f"--scale {svc.name}=4 would collide on a host port"


def test_compose_publishes_the_gateway() -> None:
    assert "8000:8000" in compose_service("ingest")["ports"]


def test_compose_wires_telemetry_files() -> None:
    mounts = {
        v.split(":")[0]: v.split(":")[1] for v in compose_service("otel-collector")["volumes"]
    }
    assert mounts["./deploy/otel/collector.yaml"] == "/etc/otelcol-contrib/config.yaml"
    grafana = {v.split(":")[0]: v.split(":")[1] for v in compose_service("grafana")["volumes"]}
    for kind in ("datasources", "dashboards"):
        source = f"./deploy/grafana/provisioning/{kind}"
        assert grafana[source] == f"/etc/grafana/provisioning/{kind}", f"Grafana lacks its {kind}"
    provider = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "darkroom.yaml"
    (dashboards,) = yaml.safe_load(provider.read_text())["providers"]
    assert grafana["./deploy/grafana/dashboards"] == dashboards["options"]["path"]
    for source in [*grafana, *mounts]:
        assert (ROOT / source).exists(), f"compose mounts missing {source}"


# ---------------------------------------------------------------------------- Dockerfiles


@by_name(SERVICES)
def test_dockerfile_runs_its_own_package(svc: Service) -> None:
    (cmd,) = instructions(svc, "CMD")
    assert json.loads(cmd) == ["python", "-m", f"darkroom.{svc.name}"]
    main = ROOT / "services" / svc.name / "src" / "darkroom" / svc.name / "__main__.py"
    assert main.exists(), f"CMD runs darkroom.{svc.name}, which has no {main.name}"


@by_name(SERVICES)
def test_dockerfile_builds_only_its_service(svc: Service) -> None:
    assert set(instructions(svc, "FROM")) <= {
        "python:3.11-slim",
        "python:3.11-slim AS build",
    }
    runs = " ".join(instructions(svc, "RUN"))
    assert "pip install uv==0.13.9" in runs
    assert f"uv sync --frozen --no-dev --package darkroom-{svc.name}" in runs
    copied = " ".join(instructions(svc, "COPY"))
    others = [s.name for s in SERVICES if s != svc and f"services/{s.name}" in copied]
    assert not others, f"{svc.name}'s image copies {others}"
    for needed in ("uv.lock", "pyproject.toml", "libs/common", f"services/{svc.name}"):
        assert needed in copied, f"{svc.name}'s image does not copy {needed}"


@by_name(SERVICES)
def test_dockerfile_runs_unprivileged_and_checks_health(svc: Service) -> None:
    users = instructions(svc, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert str(svc.port) in instructions(svc, "EXPOSE")
    (check,) = instructions(svc, "HEALTHCHECK")
    assert "urllib.request" in check and "/healthz" in check
    assert f"DARKROOM_{svc.name.upper()}_HTTP_PORT" in check or f":{svc.port}/" in check
    text = " ".join(args for _, args in dockerfile(svc))
    unknown = set(re.findall(r"DARKROOM_[A-Z0-9_]+", text)) - svc.settings_names
    assert not unknown, f"{svc.name}'s Dockerfile names non-settings {unknown}"


def test_dockerignore_keeps_the_context_small_but_whole() -> None:
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var"} <= ignored
    assert not ignored & {"uv.lock", "pyproject.toml", "libs", "services", "*.toml", "*.lock"}


# ---------------------------------------------------------------------------- deploy/k8s


def test_k8s_configmap_keys_are_real_settings() -> None:
    unknown = set(configmap()) - ALL_SETTINGS
    assert not unknown, f"darkroom-settings holds keys no setting reads (typos?): {unknown}"
    assert configmap()["DARKROOM_HTTP_HOST"] == "0.0.0.0"


@by_name(SERVICES)
def test_k8s_container_gets_every_needed_setting_and_no_other(svc: Service) -> None:
    names = k8s_env_names(k8s_container(svc))
    missing = (svc.required | local_defaults(svc.settings)) - names
    assert not missing, f"{svc.name} pods would run with on-this-machine defaults: {missing}"
    unknown = names - svc.settings_names
    assert not unknown, f"{svc.name} pods get variables no setting reads: {unknown}"


@by_name(SERVICES)
def test_k8s_secret_references_resolve(svc: Service) -> None:
    secret = k8s_object("Secret", "darkroom-secrets")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for item in k8s_container(svc).get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional"):
            assert ref["name"] == "darkroom-secrets" and ref["key"] in keys, (
                f"{svc.name}: {item['name']} refers to a missing secret key {ref}"
            )


@by_name(SERVICES)
def test_k8s_deployment_serves_and_probes_its_port(svc: Service) -> None:
    container = k8s_container(svc)
    env = {i["name"]: i.get("value") for i in container["env"]}
    assert env[f"DARKROOM_{svc.name.upper()}_HTTP_PORT"] == str(svc.port)
    (port,) = container["ports"]
    assert port["containerPort"] == svc.port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["image"] == f"darkroom-{svc.name}"

    spec = k8s_object("Deployment", svc.name)["spec"]["template"]["spec"]
    grace = float(configmap()["DARKROOM_SHUTDOWN_GRACE_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > grace, "SIGKILL would cut the drain short"
    assert spec["securityContext"]["runAsNonRoot"] is True

    service = k8s_object("Service", svc.name)["spec"]
    labels = k8s_object("Deployment", svc.name)["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items(), f"Service {svc.name} selects no pod"
    assert service["ports"][0]["port"] == svc.port


@by_name(CONSUMERS)
def test_k8s_keda_scales_consumer_on_its_lag(svc: Service) -> None:
    scaled = k8s_object("ScaledObject", svc.name)["spec"]
    assert scaled["scaleTargetRef"]["name"] == svc.name
    assert "replicas" not in k8s_object("Deployment", svc.name)["spec"], (
        f"a fixed replica count on {svc.name} fights its ScaledObject on every apply"
    )
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    most = scaled["maxReplicaCount"] * consumers_per_replica(svc)
    partitions = int(configmap()["DARKROOM_TOPIC_PARTITIONS"])
    assert most <= partitions, f"{svc.name}: {most} consumers at most, {partitions} partitions"
    triggers = [t["metadata"] for t in scaled["triggers"] if t["type"] == "kafka"]
    for meta in triggers:
        assert meta["consumerGroup"] == svc.name, "each service consumes as its own group"
        assert meta["bootstrapServers"] == configmap()["DARKROOM_KAFKA_BOOTSTRAP_SERVERS"]
    consumed = {event.topic for event in CATALOG if svc.name in event.consumers}
    watched = {meta["topic"] for meta in triggers}
    assert watched == consumed, (
        f"{svc.name} consumes {sorted(consumed)}; its ScaledObject watches {sorted(watched)}"
    )


# ---------------------------------------------------------------------------- telemetry


@cache
def collector() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "deploy" / "otel" / "collector.yaml").read_text())


@pytest.mark.parametrize(
    ("pipeline", "exporter"),
    [("traces", "otlp/jaeger"), ("metrics", "prometheus"), ("logs", "debug")],
)
def test_collector_pipeline_is_complete(pipeline: str, exporter: str) -> None:
    config = collector()
    spec = config["service"]["pipelines"][pipeline]
    assert spec["receivers"] == ["otlp"]
    assert exporter in spec["exporters"]
    for kind in ("receivers", "processors", "exporters"):
        for component in spec.get(kind, []):
            assert component in config[kind], f"{pipeline} uses undefined {kind[:-1]} {component}"


def test_collector_listens_where_services_send_and_feeds_the_backends() -> None:
    config = collector()
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    otlp = urlsplit(compose_env("ingest")["DARKROOM_OTLP_ENDPOINT"])
    assert http.endswith(f":{otlp.port}")

    jaeger_host = config["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger_host in compose()["services"]

    prometheus_port = config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    scrape = yaml.safe_load(compose()["configs"]["prometheus-config"]["content"])
    targets = [
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert f"otel-collector:{prometheus_port}" in targets


def test_grafana_datasources_reach_the_stack() -> None:
    path = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "darkroom.yaml"
    sources = {d["type"]: d for d in yaml.safe_load(path.read_text())["datasources"]}
    assert {"prometheus", "jaeger"} <= set(sources)
    for source in sources.values():
        assert urlsplit(source["url"]).hostname in compose()["services"]


def test_grafana_dashboard_charts_every_metric() -> None:
    datasources = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "darkroom.yaml"
    uids = {d["uid"] for d in yaml.safe_load(datasources.read_text())["datasources"]}
    dashboard = json.loads(
        (ROOT / "deploy" / "grafana" / "dashboards" / "darkroom.json").read_text()
    )
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    missing = [m for m in METRICS if not re.search(rf"\b{m}(_bucket)?\b", exprs)]
    assert not missing, f"the dashboard charts nothing of {missing}"
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, f"panel {panel['title']!r}: unknown datasource"
