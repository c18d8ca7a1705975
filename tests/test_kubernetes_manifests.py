"""deploy/kubernetes validates against the Kubernetes schemas and says what the service needs to run safely."""

import copy
import re

import pytest
import yaml
from server_process import REPO

from cds_service.auth import load_trusted_clients
from cds_service.settings import FIELDS

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="the test extra installs kubernetes-validate")

DIRECTORY = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the oldest supported here (preStop sleep) and the newest schema
# CDS_* variables the deployment sets before the service reads them (added by the database/audit work).
PENDING_SETTINGS: set[str] = set()  # every setting the manifests name is one the service reads


def kustomization() -> dict:
    return yaml.safe_load((DIRECTORY / "kustomization.yaml").read_text())


def resources() -> dict[str, dict]:
    """Every resource kustomization.yaml lists, by kind."""
    found = {}
    for name in kustomization()["resources"]:
        for document in yaml.safe_load_all((DIRECTORY / name).read_text()):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    return found


def validate(resource: dict, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


def pod_spec() -> dict:
    return resources()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict:
    (only,) = pod_spec()["containers"]
    return only


def test_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in DIRECTORY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert set(resources()) == {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                                "PodDisruptionBudget", "NetworkPolicy", "Ingress"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version):
    for resource in resources().values():
        validate(resource, version)


@pytest.mark.parametrize("breakage", ["unknown field", "wrong type", "missing required", "wrong api version"])
def test_an_invalid_manifest_is_refused(breakage):
    deployment = copy.deepcopy(resources()["Deployment"])
    spec = deployment["spec"]["template"]["spec"]
    if breakage == "unknown field":
        spec["securityContext"]["runAsNonroot"] = True  # misspelt: silently ignored by a lax check
    elif breakage == "wrong type":
        spec["containers"][0]["ports"][0]["containerPort"] = "8080"
    elif breakage == "missing required":
        del deployment["spec"]["selector"]
    else:
        deployment["apiVersion"] = "extensions/v1beta1"
    with pytest.raises((kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError)):
        validate(deployment, KUBERNETES_VERSIONS[-1])


def test_pod_runs_as_numeric_non_root_with_a_read_only_root_and_no_privileges():
    pod, box = pod_spec()["securityContext"], container()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["runAsGroup"] == 10001
    assert box["runAsNonRoot"] is True and box["runAsUser"] == 10001
    assert box["readOnlyRootFilesystem"] is True and box["allowPrivilegeEscalation"] is False
    assert box["capabilities"]["drop"] == ["ALL"] and pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod_spec()["automountServiceAccountToken"] is False
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"USER {pod['runAsUser']}:{pod['runAsGroup']}" in dockerfile  # the image's user, so both agree


def test_writable_paths_are_empty_dirs():
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}
    for path in ("/tmp", "/var/lib/cds"):
        assert "emptyDir" in volumes[mounts[path]] and volumes[mounts[path]]["emptyDir"]["sizeLimit"]
    assert resources()["ConfigMap"]["data"]["CDS_DATA_DIR"] == "/var/lib/cds"


def test_probes_prestop_and_graceful_termination():
    box = container()
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["readinessProbe"]["httpGet"]["path"] == "/readyz"
    named_ports = {port["name"]: port["containerPort"] for port in box["ports"]}
    assert named_ports == {"http": 8080}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert box[probe]["httpGet"]["port"] in named_ports
    pause = box["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 5 <= pause and pod_spec()["terminationGracePeriodSeconds"] >= pause + 30  # + gunicorn's graceful 30 s


def test_resources_have_requests_and_limits():
    limits, requests = container()["resources"]["limits"], container()["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests) and {"cpu", "memory"} <= set(limits)
    memory = re.fullmatch(r"(\d+)Mi", limits["memory"])
    workers = int(resources()["ConfigMap"]["data"]["CDS_WORKERS"])
    assert memory and int(memory.group(1)) >= workers * 150 + 100  # 150 MB per worker, plus the master


def test_configuration_comes_from_the_config_map_and_secrets_from_the_secret():
    config, secret = resources()["ConfigMap"], resources()["Secret"]
    assert container()["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    known = {field.variable for field in FIELDS} | PENDING_SETTINGS
    assert set(config["data"]) <= known, set(config["data"]) - known
    from_secret = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container()["env"]}
    assert set(from_secret) == {"CDS_DATABASE_URL", "CDS_AUDIT_PATIENT_KEY_SECRET"}
    for reference in from_secret.values():
        assert reference["name"] == secret["metadata"]["name"] and reference["key"] in secret["stringData"]
    assert not set(from_secret) & set(config["data"])  # secrets never in the ConfigMap


def test_trusted_clients_file_is_mounted_from_the_secret_where_the_config_map_says(tmp_path):
    config, secret = resources()["ConfigMap"], resources()["Secret"]
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    (mount,) = [mount for mount in container()["volumeMounts"] if "secret" in volumes[mount["name"]]]
    source = volumes[mount["name"]]["secret"]
    (item,) = source["items"]
    assert mount["readOnly"] is True and source["secretName"] == secret["metadata"]["name"]
    assert config["data"]["CDS_TRUSTED_CLIENTS_FILE"] == f"{mount['mountPath']}/{item['path']}"
    example = tmp_path / "trusted-clients.json"
    example.write_text(secret["stringData"][item["key"]])
    assert load_trusted_clients(example)  # the example is a file the service accepts


def test_service_hpa_pdb_and_network_policy_select_the_pods():
    found = resources()
    labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selects = lambda selector: selector.items() <= labels.items()  # noqa: E731
    assert selects(found["Service"]["spec"]["selector"]) and found["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert selects(found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    assert selects(found["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"])
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", found["Deployment"]["metadata"]["name"])
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] < found["HorizontalPodAutoscaler"]["spec"]["minReplicas"]


def test_network_policy_admits_only_the_ingress_and_monitoring_namespaces_and_ingress_routes_only_cds_services():
    policy = resources()["NetworkPolicy"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    namespaces = set()
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
        for peer in rule["from"]:
            assert set(peer) <= {"namespaceSelector", "podSelector"}  # no ipBlock: nothing from outside
            namespaces.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    assert namespaces == {"ingress-nginx", "monitoring"}
    paths = [path["path"] for rule in resources()["Ingress"]["spec"]["rules"] for path in rule["http"]["paths"]]
    assert paths == ["/cds-services"]  # /metrics, /healthz, /readyz stay inside the cluster


def test_the_image_kustomize_sets_is_the_one_the_deployment_names():
    (image,) = kustomization()["images"]
    assert image["name"] == container()["image"] and image["newTag"]
