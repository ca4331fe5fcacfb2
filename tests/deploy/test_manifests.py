"""The deployment files, checked without Docker, Kubernetes or network.

- ``docker-compose.yml`` against the Compose Specification JSON Schema that the PyPI package
  check-jsonschema vendors;
- every Kubernetes manifest against the Kubernetes JSON Schemas that kubernetes-validate
  ships (one pinned Kubernetes version, strict: unknown fields fail);
- KEDA objects against a JSON Schema written from the fields of KEDA's CRDs;
- and against the code: every stage, topic, consumer group, metrics port, ``HEART_*``
  variable and dashboard metric they name must exist, and every stage must be deployed.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

from heart.agents.registry import STAGES, stage_inputs
from heart.streams.app import app_id
from heart.streams.settings import ENV_PREFIX, HeartSettings
from heart.streams.topics import CATALOG

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "heart.json"

#: The Kubernetes version the manifests are validated for (kubernetes-validate ships it).
KUBERNETES_VERSION = "1.31.0"
#: Every worker's /metrics port.
METRICS_PORT = 9101
SETTINGS_FIELDS = {f"{ENV_PREFIX}{name.upper()}" for name in HeartSettings.model_fields}


# --------------------------------------------------------------------------- loading


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


def _interpolate(value: object) -> str:
    """Compose's ``${VAR:-default}`` with VAR unset: the default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))


def heart_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the HEART image."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if str(svc.get("image", "")).startswith("heart-stream")
    }


def compose_stages() -> dict[str, str]:
    """Compose service name -> the stage its ``heart worker STAGE`` runs."""
    out = {}
    for name, svc in heart_services().items():
        command = svc.get("command") or []
        if command[:1] == ["worker"]:
            out[name] = command[1]
    return out


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file relative to deploy/k8s, object) for every object in every manifest."""
    docs = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((str(path.relative_to(K8S)), doc))
    return tuple(docs)


def objects(kind: str, *, templates: bool = False) -> list[dict[str, Any]]:
    return [
        doc
        for path, doc in k8s_docs()
        if doc["kind"] == kind and (templates or ".template." not in path)
    ]


def one(kind: str, name: str, *, templates: bool = False) -> dict[str, Any]:
    found = [d for d in objects(kind, templates=templates) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def worker_deployments() -> dict[str, dict[str, Any]]:
    """Stage -> the Deployment whose container runs ``heart worker STAGE``."""
    out = {}
    for deployment in objects("Deployment"):
        args = pod_spec(deployment)["containers"][0].get("args", [])
        if args[:1] == ["worker"]:
            assert args[1] not in out, f"two Deployments run stage {args[1]}"
            out[args[1]] = deployment
    return out


def settings_configmap() -> dict[str, str]:
    return one("ConfigMap", "heart-settings")["data"]


def stage_of(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


# --------------------------------------------------------------------------- compose


@cache
def compose_schema() -> dict[str, Any]:
    # Located, not imported: check-jsonschema's CLI may need a newer click than Faust allows.
    dist = metadata.distribution("check-jsonschema")
    path = Path(str(dist.locate_file("check_jsonschema/builtin_schemas/vendor/compose-spec.json")))
    return json.loads(path.read_text())


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_matches_the_compose_spec() -> None:
    assert compose_errors(compose()) == []


def test_compose_schema_check_is_strict() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["triage"]["replicaz"] = 2
    broken["services"]["dispatch"]["depends_on"]["topic-init"]["condition"] = "service_done"
    errors = compose_errors(broken)
    assert any("replicaz" in e for e in errors), errors
    assert any("service_done" in e for e in errors), errors


def test_compose_runs_apache_kafka_in_kraft_mode() -> None:
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"] == "apache/kafka:3.9.0"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(
        item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    # In-network clients reach the broker at the address every HEART service uses.
    bootstraps = {
        _interpolate(svc["environment"]["HEART_KAFKA_BOOTSTRAP"])
        for svc in heart_services().values()
    }
    assert bootstraps == {advertised["PLAINTEXT"]} == {"kafka:9092"}
    assert kafka["healthcheck"]["test"]


def test_compose_topic_init_then_stages() -> None:
    services = compose()["services"]
    init = services["topic-init"]
    assert init["command"] == ["topics", "create"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["healthcheck"] == {"disable": True}
    for name in compose_stages():
        assert services[name]["depends_on"]["topic-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_stages_scale_without_clashes() -> None:
    """``docker compose up --scale STAGE=N`` needs no fixed name and no host port."""
    for name in compose_stages():
        svc = compose()["services"][name]
        assert "container_name" not in svc, name
        assert "ports" not in svc, name


def test_compose_simulator_is_behind_a_profile() -> None:
    simulator = compose()["services"]["simulator"]
    assert simulator["profiles"] == ["sim"]
    assert simulator["command"][:1] == ["simulate"]
    assert simulator["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"


def test_compose_provisions_prometheus_and_grafana_from_deploy() -> None:
    services = compose()["services"]

    def mounts(name: str) -> dict[str, str]:
        out = {}
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            out[target] = source
        return out

    prometheus = mounts("prometheus")
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"
    for source in [*prometheus.values(), *grafana.values()]:
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    provider = _yaml(GRAFANA / "provisioning" / "dashboards" / "heart.yml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_replica_of_every_stage() -> None:
    config = _yaml(PROMETHEUS)
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", job["job_name"]
            for name in sd["names"]:
                scraped[name] = sd["port"]
    assert scraped == dict.fromkeys(compose_stages(), METRICS_PORT)


# --------------------------------------------------------------------------- kubernetes


def _is_crd(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"].startswith("keda.sh/")


@pytest.mark.parametrize(
    ("path", "doc"),
    [(p, d) for p, d in k8s_docs() if not _is_crd(d)],
    ids=[f"{p}:{d['kind']}/{d['metadata']['name']}" for p, d in k8s_docs() if not _is_crd(d)],
)
def test_k8s_manifest_matches_kubernetes_schema(path: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_k8s_schema_check_is_strict() -> None:
    deployment = copy.deepcopy(next(iter(worker_deployments().values())))
    pod_spec(deployment)["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_templates() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {str(p.relative_to(K8S)) for p in k8s_files() if ".template." not in p.name}
    assert listed == on_disk
    assert kustomization["namespace"] == "heart"
    for _path, doc in k8s_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "heart", doc["metadata"]["name"]


# KEDA: a JSON Schema for the ScaledObject fields of keda.sh_scaledobjects.yaml (v1alpha1,
# KEDA 2.16) and the Kafka scaler's trigger metadata (pkg/scalers/kafka_scaler.go), strict.
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_BOOL_STRING = {"type": "string", "enum": ["true", "false"]}
_INT_STRING = {"type": "string", "pattern": r"^[0-9]+$"}
_HPA_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {**_INT32, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "tolerance": {"type": ["string", "number"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "value", "periodSeconds"],
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {**_INT32, "minimum": 1},
                    "periodSeconds": {**_INT32, "minimum": 1, "maximum": 1800},
                },
            },
        },
    },
}
KAFKA_TRIGGER_METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
    "properties": {
        "bootstrapServers": {"type": "string", "minLength": 1},
        "bootstrapServersFromEnv": {"type": "string"},
        "consumerGroup": {"type": "string", "minLength": 1},
        "consumerGroupFromEnv": {"type": "string"},
        "topic": {"type": "string", "minLength": 1},
        "topicFromEnv": {"type": "string"},
        "partitionLimitation": {"type": "string"},
        "lagThreshold": _INT_STRING,
        "activationLagThreshold": _INT_STRING,
        "offsetResetPolicy": {"enum": ["latest", "earliest"]},
        "allowIdleConsumers": _BOOL_STRING,
        "excludePersistentLag": _BOOL_STRING,
        "scaleToZeroOnInvalidOffset": _BOOL_STRING,
        "limitToPartitionsWithLag": _BOOL_STRING,
        "ensureEvenDistributionOfPartitions": _BOOL_STRING,
        "version": {"type": "string"},
        "tls": {"enum": ["enable", "disable"]},
        "unsafeSsl": _BOOL_STRING,
        "sasl": {
            "enum": ["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]
        },
        "saslTokenProvider": {"enum": ["bearer", "aws_msk_iam"]},
        "awsRegion": {"type": "string"},
    },
    # KEDA refuses these combinations (kafkaMetadata.Validate).
    "not": {
        "properties": {
            "allowIdleConsumers": {"const": "true"},
            "limitToPartitionsWithLag": {"const": "true"},
        },
        "required": ["allowIdleConsumers", "limitToPartitionsWithLag"],
    },
}
SCALED_OBJECT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": _INT32,
                        "replicas": _INT32,
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "scalingModifiers": {"type": "object"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES},
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "kafka"},
                            "name": {
                                "type": "string",
                                "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                            },
                            "metadata": KAFKA_TRIGGER_METADATA,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "status": {"type": "object"},
    },
}
#: keda.sh_triggerauthentications.yaml, secretTargetRef only; parameters of the Kafka scaler.
TRIGGER_AUTHENTICATION_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretTargetRef"],
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parameter", "name", "key"],
                        "properties": {
                            "parameter": {
                                "enum": [
                                    "sasl",
                                    "username",
                                    "password",
                                    "tls",
                                    "ca",
                                    "cert",
                                    "key",
                                    "keyPassword",
                                ]
                            },
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}


def _schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_keda_schemas_are_valid_json_schemas() -> None:
    jsonschema.Draft202012Validator.check_schema(SCALED_OBJECT_SCHEMA)
    jsonschema.Draft202012Validator.check_schema(TRIGGER_AUTHENTICATION_SCHEMA)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_scaled_object_matches_keda_crd(stage: str) -> None:
    scaled = one("ScaledObject", f"heart-{stage}")
    assert _schema_errors(SCALED_OBJECT_SCHEMA, scaled) == []


def test_keda_schema_check_is_strict() -> None:
    scaled = copy.deepcopy(objects("ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 6
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    errors = _schema_errors(SCALED_OBJECT_SCHEMA, scaled)
    assert any("maxReplicas" in e for e in errors), errors
    assert any("lagTreshold" in e for e in errors), errors


def test_trigger_authentication_matches_keda_crd() -> None:
    for auth in objects("TriggerAuthentication"):
        assert _schema_errors(TRIGGER_AUTHENTICATION_SCHEMA, auth) == []
    referenced = {
        trigger["authenticationRef"]["name"]
        for scaled in objects("ScaledObject")
        for trigger in scaled["spec"]["triggers"]
        if "authenticationRef" in trigger
    }
    assert referenced <= {a["metadata"]["name"] for a in objects("TriggerAuthentication")}


# --------------------------------------------------------------------------- the code


def test_every_stage_is_deployed_and_every_deployed_stage_exists() -> None:
    """Compose, Prometheus and Kubernetes run exactly ``heart.cli.worker.STAGES``."""
    stages = set(STAGES)
    assert set(compose_stages().values()) == stages
    assert set(compose_stages()) == stages, "compose services are named after their stage"
    assert set(worker_deployments()) == stages
    for kind in ("ScaledObject", "PodDisruptionBudget", "Service"):
        assert sorted(stage_of(o) for o in objects(kind)) == sorted(stages), kind


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_scaled_object_follows_the_stage_consumer_group(stage: str) -> None:
    settings = settings_configmap()
    deployment = worker_deployments()[stage]
    scaled = one("ScaledObject", f"heart-{stage}")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    topics = [t["metadata"]["topic"] for t in spec["triggers"]]
    assert len(topics) == len(set(topics))
    unknown = [t for t in topics if t not in CATALOG]
    assert unknown == [], f"not in streams.topics.CATALOG: {unknown}"
    # One trigger per topic the stage's agents consume: lag anywhere scales the stage.
    assert set(topics) == set(stage_inputs(stage))
    partitions = min(CATALOG[t].partitions for t in topics)
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    group = app_id(stage, HeartSettings(topic_prefix=settings.get("HEART_TOPIC_PREFIX", "")))
    protocol = settings["HEART_KAFKA_SECURITY_PROTOCOL"]
    sasl = {
        "PLAIN": "plaintext",
        "SCRAM-SHA-256": "scram_sha256",
        "SCRAM-SHA-512": "scram_sha512",
    }.get(settings.get("HEART_KAFKA_SASL_MECHANISM", ""), "none")
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == group
        assert meta["bootstrapServers"] == settings["HEART_KAFKA_BOOTSTRAP"]
        # Faust starts a new group at the earliest offset; KEDA must count lag the same way.
        assert meta["offsetResetPolicy"] == "earliest"
        assert meta.get("tls", "disable") == ("enable" if "SSL" in protocol else "disable")
        assert meta.get("sasl", "none") == (sasl if protocol.startswith("SASL_") else "none")


def test_every_topic_named_in_the_deployment_exists() -> None:
    named = {t["metadata"]["topic"] for s in objects("ScaledObject") for t in s["spec"]["triggers"]}
    # Anything in the deployment files that reads like a topic name: a catalog family
    # (cad, triage, dispatch, units, followup, heart), a dot, more words; not a file name.
    families = {name.split(".")[0] for name in CATALOG}
    for path in [COMPOSE, PROMETHEUS, *k8s_files(), DEPLOY / "README.md"]:
        for match in re.findall(r"(?<![\w./-])[a-z]+(?:\.[a-z]+)+\b", path.read_text()):
            parts = match.split(".")
            if parts[0] in families and parts[-1] not in _FILE_EXTENSIONS:
                named.add(match)
    assert named, "no topic found"
    assert sorted(named - set(CATALOG)) == []


_FILE_EXTENSIONS = {"yaml", "yml", "json", "toml", "md", "py", "html", "crt", "key", "pem"}


def _k8s_env(container: dict[str, Any]) -> dict[str, str | None]:
    """A container's environment: ConfigMaps from envFrom, then env (None: from a Secret)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def _k8s_workloads() -> list[dict[str, Any]]:
    return [*objects("Deployment"), *objects("Job")]


def test_every_variable_set_is_a_heart_setting() -> None:
    sets: dict[str, set[str]] = {}
    for name, svc in heart_services().items():
        sets[f"compose {name}"] = set(svc["environment"])
    sets["configmap heart-settings"] = set(settings_configmap())
    for workload in _k8s_workloads():
        for container in pod_spec(workload)["containers"]:
            sets[f"k8s {workload['metadata']['name']}"] = set(_k8s_env(container))
    sets["Dockerfile"] = set(re.findall(r"\b(HEART_[A-Z_]+)=", DOCKERFILE.read_text()))
    for where, names in sets.items():
        assert sorted(names - SETTINGS_FIELDS) == [], where


def test_compose_settings_load() -> None:
    for name, svc in heart_services().items():
        env = {k: _interpolate(v) for k, v in svc["environment"].items()}
        settings = HeartSettings.from_env(env)
        assert settings.metrics_port == METRICS_PORT, name
        assert settings.kafka_bootstrap == "kafka:9092", name


def test_k8s_settings_load_with_the_secrets_in_place() -> None:
    secrets = {s["metadata"]["name"]: s for s in objects("Secret", templates=True)}
    for workload in _k8s_workloads():
        container = pod_spec(workload)["containers"][0]
        env = _k8s_env(container)
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
        settings = HeartSettings.from_env({k: v for k, v in env.items() if v is not None})
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_password, workload["metadata"]["name"]


def test_metrics_ports_match_heart_metrics_port() -> None:
    assert int(settings_configmap()["HEART_METRICS_PORT"]) == METRICS_PORT
    for name, svc in heart_services().items():
        assert int(svc["environment"]["HEART_METRICS_PORT"]) == METRICS_PORT, name
    for name in compose_stages():
        assert [int(p) for p in compose()["services"][name]["expose"]] == [METRICS_PORT]
    dockerfile = DOCKERFILE.read_text()
    assert f"HEART_METRICS_PORT={METRICS_PORT}" in dockerfile
    assert re.search(rf"^EXPOSE {METRICS_PORT}$", dockerfile, re.M)
    assert "/metrics" in re.search(r"^HEALTHCHECK.*?(?=^\S)", dockerfile, re.M | re.S).group(0)
    for stage, deployment in worker_deployments().items():
        template = deployment["spec"]["template"]
        container = pod_spec(deployment)["containers"][0]
        env = _k8s_env(container)
        assert int(env["HEART_METRICS_PORT"]) == METRICS_PORT, stage
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": METRICS_PORT}, stage
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, stage
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(METRICS_PORT)
        service = one("Service", f"{deployment['metadata']['name']}-metrics")
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}
        ]


@pytest.mark.parametrize("workload", _k8s_workloads(), ids=lambda w: w["metadata"]["name"])
def test_k8s_workload_is_locked_down(workload: dict[str, Any]) -> None:
    spec = pod_spec(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert container["image"].startswith("heart-stream:")


def test_k8s_policy_and_secrets_are_wired() -> None:
    """Policy from the ConfigMap mount, SASL from secretKeyRef, TLS from a Secret mount."""
    policy = one("ConfigMap", "heart-policy")["data"]
    secrets = {s["metadata"]["name"]: s for s in objects("Secret", templates=True)}
    for stage, deployment in worker_deployments().items():
        spec = pod_spec(deployment)
        container = spec["containers"][0]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = _k8s_env(container)
        for var in ("HEART_POLICY", "HEART_ROSTER"):
            path = Path(env[var])
            assert mounts[str(path.parent)]["configMap"]["name"] == "heart-policy", stage
            assert path.name in policy, stage
        tls = mounts[str(Path(env["HEART_KAFKA_SSL_CAFILE"]).parent)]["secret"]
        assert Path(env["HEART_KAFKA_SSL_CAFILE"]).name in secrets[tls["secretName"]]["stringData"]
        refs = [v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v]
        assert {r["key"] for r in refs} == {
            "HEART_KAFKA_SASL_USERNAME",
            "HEART_KAFKA_SASL_PASSWORD",
        }
        for ref in refs:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    for auth in objects("TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref


def test_secret_templates_hold_only_placeholders() -> None:
    templates = objects("Secret", templates=True)
    assert templates, "secrets.template.yaml"
    assert objects("Secret") == [], "real Secrets are never applied from the repository"
    for secret in templates:
        for key, value in secret["stringData"].items():
            assert "<REPLACE" in value, f"{secret['metadata']['name']}.{key}"


def test_policy_configmap_matches_the_repository_files() -> None:
    data = one("ConfigMap", "heart-policy")["data"]
    for name, text in data.items():
        assert text == (ROOT / "policy" / name).read_text(), f"copy policy/{name} into policy.yaml"


def test_dockerfile_installs_every_package_and_runs_heart() -> None:
    dockerfile = DOCKERFILE.read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
    assert folders <= copied
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert 'ENTRYPOINT ["heart"]' in dockerfile
    assert 'CMD ["worker", "triage"]' in dockerfile


# --------------------------------------------------------------------------- Grafana


def _metric_families() -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed sample name -> (family, its label names), for every registered heart_ metric."""
    import heart.streams.metrics  # noqa: F401  (registers the metrics)

    for module in STAGES.values():
        importlib.import_module(module)
    labels: dict[str, frozenset[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # type: ignore[attr-defined]
        for name in REGISTRY._collector_to_names[collector]:  # type: ignore[attr-defined]
            labels[name] = frozenset(getattr(collector, "_labelnames", ()))
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
    }
    out = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("heart_"):
            continue
        for suffix in suffixes.get(family.type, ("",)):
            name = family.name + suffix
            out[name] = (family.name, labels.get(name, labels.get(family.name, frozenset())))
    return out


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) that a PromQL expression refers to.

    Enough PromQL for the dashboard's queries: strings, ranges and numbers are dropped;
    label names come from ``{...}`` matchers and ``by/without/on/ignoring/group_*(...)``;
    an identifier followed by ``(`` is a function or aggregation; the rest are metrics.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    labels: set[str] = set()
    for block in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", block))
    text = re.sub(r"\{[^}]*\}", " ", text)
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for block in re.findall(grouping, text):
        labels |= {x.strip() for x in block.split(",") if x.strip()}
    text = re.sub(grouping, " ", text)
    text = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", " ", text)
    metrics = {
        m.group(1)
        for m in re.finditer(r"\b([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
        if m.group(1) not in _KEYWORDS
    }
    return metrics, labels


def test_promql_parser_finds_metrics_and_labels() -> None:
    metrics, labels = parse_promql(
        'sum by (stage, le) (rate(heart_x_bucket{route="ccd"}[5m])) / on (stage) '
        "(sum by (stage) (heart_y_total) > 0) * 1e-3"
    )
    assert metrics == {"heart_x_bucket", "heart_y_total"}
    assert labels == {"stage", "le", "route"}


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets() -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    datasource = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    uids = {d["uid"] for d in datasource["datasources"] if d["type"] == "prometheus"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] in uids, panel["title"]


def test_dashboard_queries_use_only_registered_metrics_and_their_labels() -> None:
    families = _metric_families()
    assert families, "no heart_ metric registered"
    for title, target in dashboard_targets():
        metrics, labels = parse_promql(target["expr"])
        assert metrics, f"{title}: no metric in {target['expr']!r}"
        unknown = sorted(metrics - set(families))
        assert unknown == [], f"{title}: not registered by the code: {unknown}"
        known = {"le"} if any(m.endswith("_bucket") for m in metrics) else set()
        for metric in metrics:
            known |= families[metric][1]
        assert sorted(labels - known) == [], f"{title}: labels {sorted(labels - known)}"


def test_dashboard_covers_red_lag_and_the_pilot_kpis() -> None:
    used = {
        _metric_families()[m][0]
        for _title, target in dashboard_targets()
        for m in parse_promql(target["expr"])[0]
    }
    required = {
        # RED per stage, and lag.
        "heart_events_consumed",
        "heart_deadletters",
        "heart_processing_seconds",
        "heart_consumergroup_lag",
        "heart_consumergroup_lag_seconds",
        # Pilot KPIs.
        "heart_calls",
        "heart_eligible_missed",
        "heart_decision_to_assignment_seconds",
        "heart_assignment_to_on_scene_seconds",
        "heart_time_on_scene_seconds",
        "heart_queue_length",
        "heart_queue_longest_wait_seconds",
        "heart_fallbacks",
        "heart_backup_requests",
        "heart_team_utilisation_ratio",
        "heart_followups_scheduled",
        "heart_followups_due",
        "heart_followups_completed",
        "heart_followups_at_risk",
        "heart_followups_overdue",
    }
    assert sorted(required - used) == []


# --------------------------------------------------------------------------- alert rules


def alert_rule_files() -> list[Path]:
    return [PROMETHEUS.parent / name for name in _yaml(PROMETHEUS).get("rule_files", [])]


def alert_rules() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in alert_rule_files():
        for group in _yaml(path)["groups"]:
            for rule in group["rules"]:
                assert rule["alert"] not in rules, f"two rules named {rule['alert']}"
                rules[rule["alert"]] = rule
    return rules


def test_prometheus_loads_the_alert_rules_shipped_beside_it() -> None:
    files = alert_rule_files()
    assert [p.name for p in files] == ["alerts.yml"]
    assert all(p.is_file() for p in files)
    assert {"HeartDeadLettersHigh", "HeartStagePaused", "HeartStaleCalls"} <= set(alert_rules())


def test_alert_rules_use_only_registered_metrics_and_their_labels() -> None:
    families = _metric_families()
    for name, rule in alert_rules().items():
        metrics, labels = parse_promql(rule["expr"])
        assert metrics, f"{name}: no metric in {rule['expr']!r}"
        assert sorted(metrics - set(families)) == [], f"{name}: not registered by the code"
        known = set().union(*(families[m][1] for m in metrics))
        assert sorted(labels - known) == [], f"{name}: unknown labels"
        # Every alert says how bad it is and where its runbook is.
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_points_at_the_runbook() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    for name, rule in alert_rules().items():
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/reliability.md", name
        headings = {
            re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", doc, re.M)
        }
        assert anchor in headings, f"{name}: no heading #{anchor} in {page}"


def test_the_dead_letter_alert_and_the_workers_alarm_agree() -> None:
    """The rule fires on the figure the worker logs CRITICAL on: dead letters a minute over
    the same window, above HEART_DEADLETTER_ALARM_PER_MIN's default."""
    from heart.streams.deadletter import ALARM_WINDOW_S

    rule = alert_rules()["HeartDeadLettersHigh"]
    match = re.fullmatch(
        r"sum by \(stage\) \(rate\(heart_deadletters_total\[(\d+)m\]\)\) \* 60 > (\S+)",
        rule["expr"],
    )
    assert match, rule["expr"]
    assert int(match.group(1)) * 60 == ALARM_WINDOW_S
    assert float(match.group(2)) == HeartSettings().deadletter_alarm_per_min
