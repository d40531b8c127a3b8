"""deploy/kuberay/ and the Dockerfile, checked without a cluster or a network: every manifest is
one the Kubernetes API server and the KubeRay operator would accept, and it puts keys and
actors where the federation's threat model needs them.

Custom resources are validated against the KubeRay CRDs copied into tests/data/kuberay-crds/
(their ``openAPIV3Schema`` through jsonschema), plus what jsonschema does not know of a
Kubernetes structural schema: a key the schema does not declare is silently pruned by the API
server (CRD schemas rarely say ``additionalProperties: false``, so a misspelt field would pass
plain validation and vanish), and ``x-kubernetes-list-type`` map/set lists must not repeat an
item. CEL rules (``x-kubernetes-validations``) are not evaluated: a test fails if one applies
to a field the manifests set. Core objects, every pod template and every object's metadata
are validated strictly against the Kubernetes schemas that kubernetes-validate ships.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from securemed.config import parse_config
from securemed.pki import PkiLayout

ROOT = Path(__file__).resolve().parents[3]
KUBERAY = ROOT / "deploy" / "kuberay"
CRDS = ROOT / "tests" / "data" / "kuberay-crds"
IMAGE = (KUBERAY / "image.txt").read_text().strip()
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 3 MB of YAML

# deploy/kuberay is not a package: load its renderer under a name nothing else uses
_spec = importlib.util.spec_from_file_location("securemed_kuberay_render", KUBERAY / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = render  # its dataclasses look their module up there
_spec.loader.exec_module(render)

#: the oldest and the newest Kubernetes whose schemas kubernetes-validate ships
K8S_VERSIONS = (
    kubernetes_validate.utils.all_versions()[0],
    kubernetes_validate.utils.latest_version(),
)
#: KubeRay's name limits (its validation.go): a RayCluster's name is a DNS-1035 label of at
#: most 53 characters; a RayJob's or RayService's 6 fewer, for the suffix of its cluster
MAX_NAME = {"RayCluster": 53, "RayJob": 47, "RayService": 47}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: rayStartParams keys that KubeRay refuses beside a group's `resources` (validation.go)
RAY_START_RESOURCE_KEYS = {"num-cpus", "num-gpus", "memory", "resources"}
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # fmt: skip
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


# ---- reading the manifests and the CRDs -------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    file: Path
    doc: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.doc['kind']}/{self.doc['metadata']['name']}"


@functools.cache
def manifests() -> tuple[Manifest, ...]:
    found = []
    for file in sorted(KUBERAY.rglob("*.yaml")):
        found += [Manifest(file, doc) for doc in yaml.safe_load_all(file.read_text()) if doc]
    return tuple(found)


def custom_resources() -> list[Manifest]:
    return [m for m in manifests() if m.doc["apiVersion"].startswith("ray.io/")]


def core_objects() -> list[Manifest]:
    return [m for m in manifests() if not m.doc["apiVersion"].startswith("ray.io/")]


def the(kind: str) -> dict[str, Any]:
    (doc,) = [m.doc for m in manifests() if m.doc["kind"] == kind]
    return doc


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema."""
    schemas = {}
    for file in sorted(CRDS.glob("ray.io_*.yaml")):
        crd = yaml.load(file.read_text(), Loader=Loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schemas[f"{group}/{version['name']}", kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def _crd_key(doc: dict[str, Any]) -> tuple[str, str]:
    key = (doc["apiVersion"], doc["kind"])
    assert key in crd_schemas(), f"no CRD in {CRDS} serves {key}"
    return key


def schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    return crd_schemas()[_crd_key(doc)]


# ---- OpenAPI v3 (Kubernetes flavour) to JSON Schema ----------------------------------------


def json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as draft-4 JSON Schema: ``nullable`` becomes a null
    alternative and a bare ``x-kubernetes-int-or-string`` an integer-or-string alternative;
    other ``x-kubernetes-*`` keys are left for :func:`structural_findings`."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items()}
    if converted.get("x-kubernetes-int-or-string") and not {"type", "anyOf"} & set(converted):
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@functools.cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    schema = json_schema(crd_schemas()[api_version, kind])
    return jsonschema.Draft4Validator(schema, format_checker=_FORMATS)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """What validating ``doc`` against its CRD's schema finds (draft 4: OpenAPI 3.0's base)."""
    validator = _validator(*_crd_key(doc))
    return [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


@dataclass
class Findings:
    """What the API server would do beyond the schema's plain validation."""

    undeclared: list[str] = field(default_factory=list)  # pruned: a misspelt key
    duplicates: list[str] = field(default_factory=list)  # a list-type map/set repeats an item
    rules: list[tuple[str, str]] = field(default_factory=list)  # CEL rules met on the way


def structural_findings(doc: dict[str, Any], schema: dict[str, Any]) -> Findings:
    """Walk ``doc`` beside ``schema``. The top-level ``metadata`` is an ObjectMeta the CRD
    leaves to the API server; :func:`test_every_object_metadata_is_a_valid_object_meta`
    checks it."""
    found = Findings()
    for key, value in doc.items():
        if key == "metadata":
            continue
        properties = schema.get("properties", {})
        if key in properties:
            _walk(value, properties[key], key, found)
        else:
            found.undeclared.append(key)
    return found


def _walk(value: Any, schema: dict[str, Any], where: str, found: Findings) -> None:
    for rule in schema.get("x-kubernetes-validations", ()):
        found.rules.append((where, rule["rule"]))
    if any(
        "properties" in sub for key in ("anyOf", "allOf", "oneOf") for sub in schema.get(key, ())
    ):
        raise NotImplementedError(f"{where}: properties under anyOf/allOf/oneOf")
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            at = f"{where}.{key}"
            if properties is not None and key in properties:
                _walk(item, properties[key], at, found)
            elif isinstance(extra, dict):
                _walk(item, extra, at, found)
            elif extra is not True:
                found.undeclared.append(at)
    elif isinstance(value, list):
        items = schema.get("items", {})
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            defaults = {k: items.get("properties", {}).get(k, {}).get("default") for k in
                        schema["x-kubernetes-list-map-keys"]}  # fmt: skip
            identities = [tuple(item.get(k, d) for k, d in defaults.items()) for item in value]
        elif list_type == "set":
            identities = [json.dumps(item, sort_keys=True) for item in value]
        else:
            identities = []
        found.duplicates += [
            f"{where}[{i}]" for i, key in enumerate(identities) if key in identities[:i]
        ]
        for i, item in enumerate(value):
            _walk(item, items, f"{where}[{i}]", found)


def cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    return {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"),
            "RayService": spec.get("rayClusterConfig")}[doc["kind"]]  # fmt: skip


def groups(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each group of a cluster spec by name; the head's is "head"."""
    workers = {group["groupName"]: group for group in spec.get("workerGroupSpecs", [])}
    return {"head": spec["headGroupSpec"], **workers}


def secrets_referenced(node: Any) -> set[str]:
    """Every Secret a pod template names: volumes, projected sources, env and envFrom."""
    names: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("secret"), dict):
            names.add(node["secret"].get("secretName") or node["secret"].get("name"))
        for key in ("secretKeyRef", "secretRef"):
            if isinstance(node.get(key), dict):
                names.add(node[key]["name"])
        for value in node.values():
            names |= secrets_referenced(value)
    elif isinstance(node, list):
        for item in node:
            names |= secrets_referenced(item)
    return names


def projected_files(template: dict[str, Any], source: str, name: str) -> tuple[str, set[str]]:
    """Where the volume holding ``source`` (secret/configMap) ``name`` is mounted in the Ray
    container, and the paths its items take there."""
    spec = template["spec"]
    for volume in spec.get("volumes", []):
        for item in volume.get("projected", {}).get("sources", []):
            if item.get(source, {}).get("name") == name:
                (mount,) = [m["mountPath"] for m in spec["containers"][0]["volumeMounts"]
                            if m["name"] == volume["name"]]  # fmt: skip
                return mount, {entry["path"] for entry in item[source]["items"]}
    raise AssertionError(f"no projected {source} {name}")


def mounts(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there, in the Ray container."""
    spec = template["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for m in spec["containers"][0]["volumeMounts"]}


def federated_configmap() -> dict[str, Any]:
    (configmap,) = [m.doc for m in core_objects()
                    if m.doc["metadata"]["name"] == "securemed-federated-config"]  # fmt: skip
    return configmap


def federated_job_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(federated_configmap()["data"]["federated.yaml"])
    return config


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(package: str) -> str:
    (pin,) = [d for d in pyproject()["project"]["dependencies"]
              if re.match(rf"{package}(\[.*\])?==", d)]  # fmt: skip
    return pin.split("==")[1]


# ---- the CRD schemas --------------------------------------------------------------------


def test_the_crds_are_read_from_the_repository_with_their_source_and_licence() -> None:
    assert {"ray.io/v1"} <= {version for version, _ in crd_schemas()}
    assert {kind for _, kind in crd_schemas()} == {"RayCluster", "RayJob", "RayService"}
    assert (CRDS / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "feeaf72facab4881ba2b179248bb67315634e229" in (CRDS / "SOURCE.md").read_text()


def test_deploy_kuberay_holds_a_cluster_a_job_and_a_service_and_only_known_kinds() -> None:
    assert sorted(m.doc["kind"] for m in custom_resources()) == ["RayCluster", "RayJob",
                                                                 "RayService"]  # fmt: skip
    for manifest in custom_resources():
        assert manifest.doc["apiVersion"] == "ray.io/v1", manifest.label


@pytest.mark.parametrize("manifest", custom_resources(), ids=lambda m: m.doc["kind"])
def test_every_custom_resource_validates_against_its_crd_schema(manifest: Manifest) -> None:
    assert schema_errors(manifest.doc) == []


@pytest.mark.parametrize("manifest", custom_resources(), ids=lambda m: m.doc["kind"])
def test_every_key_of_a_custom_resource_is_one_its_schema_declares(manifest: Manifest) -> None:
    found = structural_findings(manifest.doc, schema_for(manifest.doc))
    assert found.undeclared == []
    assert found.duplicates == []


@pytest.mark.parametrize("manifest", custom_resources(), ids=lambda m: m.doc["kind"])
def test_no_cel_rule_this_test_cannot_evaluate_applies_to_a_field_we_set(
    manifest: Manifest,
) -> None:
    """Transition rules (self == oldSelf) only bind updates; any other rule must be evaluated
    here before a manifest may set the field it guards."""
    found = structural_findings(manifest.doc, schema_for(manifest.doc))
    assert [(where, rule) for where, rule in found.rules if rule != "self == oldSelf"] == []


def test_a_misspelt_key_passes_plain_schema_validation_but_the_walker_catches_it() -> None:
    job = copy.deepcopy(the("RayJob"))
    cluster = job["spec"]["rayClusterSpec"]
    cluster["headGroupSpecs"] = cluster["headGroupSpec"]  # the typo, beside the real key
    assert schema_errors(job) == []  # why the walker exists
    assert structural_findings(job, schema_for(job)).undeclared == [
        "spec.rayClusterSpec.headGroupSpecs"
    ]

    cluster.pop("headGroupSpec")  # only the typo: the required field is missing as well
    assert any("headGroupSpec" in error for error in schema_errors(job))


def test_a_misspelt_key_deep_in_a_pod_template_is_caught() -> None:
    cluster = copy.deepcopy(the("RayCluster"))
    container = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")
    found = structural_findings(cluster, schema_for(cluster))
    assert found.undeclared == ["spec.workerGroupSpecs[0].template.spec.containers[0].volumeMount"]


def test_wrong_types_and_repeated_list_map_items_are_refused() -> None:
    cluster = copy.deepcopy(the("RayCluster"))
    cluster["spec"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": 2}  # must be a string
    cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] = 2**31  # int32
    errors = schema_errors(cluster)
    assert any(e.startswith("spec.headGroupSpec.rayStartParams.num-cpus") for e in errors)
    assert any(e.startswith("spec.workerGroupSpecs.0.maxReplicas") for e in errors)

    container = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    found = structural_findings(cluster, schema_for(cluster))
    assert found.duplicates == ["spec.headGroupSpec.template.spec.containers[0].env[1]"]


# ---- what the KubeRay operator itself refuses ----------------------------------------------


@pytest.mark.parametrize("manifest", custom_resources(), ids=lambda m: m.doc["kind"])
def test_each_custom_resource_passes_the_operators_own_checks(manifest: Manifest) -> None:
    doc = manifest.doc
    name = doc["metadata"]["name"]
    assert DNS_1035.match(name) and len(name) <= MAX_NAME[doc["kind"]], name
    spec = cluster_spec(doc)
    assert spec is not None, f"{manifest.label}: embeds its cluster (no clusterSelector)"
    assert spec["rayVersion"] == pinned("ray")
    autoscaling = spec.get("enableInTreeAutoscaling", False)
    for group_name, group in groups(spec).items():
        assert group["template"]["spec"]["containers"], group_name
        params = group.get("rayStartParams", {})
        if group.get("resources"):
            assert not RAY_START_RESOURCE_KEYS & set(params), group_name
        assert "labels" not in params, f"{group_name}: use the group's labels field"
        for key, value in group.get("labels", {}).items():
            assert LABEL_KEY.match(key) and len(key.split("/")[-1]) <= 63, key
            assert LABEL_VALUE.match(value), value
        if group_name != "head" and not autoscaling:
            low, high = group["minReplicas"], group["maxReplicas"]
            assert 0 <= low <= group.get("replicas", low) <= high, group_name


def test_the_job_shuts_its_cluster_down_and_runs_a_script_the_image_has() -> None:
    job = the("RayJob")["spec"]
    assert job["shutdownAfterJobFinishes"] is True
    assert job.get("submissionMode", "K8sJobMode") == "K8sJobMode"
    assert "clusterSelector" not in job
    assert job.get("ttlSecondsAfterFinished", 0) >= 0

    python, script, *arguments = shlex.split(job["entrypoint"])
    assert python == "python"
    assert (ROOT / script).is_file()
    tree = ast.parse((ROOT / script).read_text())
    flags = {node.args[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
             and isinstance(node.args[0], ast.Constant)}  # fmt: skip
    assert {a for a in arguments if a.startswith("--")} <= flags
    assert PurePosixPath(script).parts[0] in copied_into_image()

    # the config it names is the ConfigMap the head mounts
    config = PurePosixPath(arguments[arguments.index("--config") + 1])
    volume = mounts(job["rayClusterSpec"]["headGroupSpec"]["template"])[str(config.parent)]
    assert volume["configMap"]["name"] == "securemed-federated-config"
    assert config.name in federated_configmap()["data"]


# ---- core objects ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", core_objects(), ids=lambda m: m.label.split(":")[-1])
def test_every_core_object_validates_strictly_offline(manifest: Manifest, version: str) -> None:
    kubernetes_validate.validate(manifest.doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", custom_resources(), ids=lambda m: m.doc["kind"])
def test_every_pod_template_and_metadata_in_a_custom_resource_is_valid_kubernetes(
    manifest: Manifest, version: str
) -> None:
    """The CRDs embed a PodTemplateSpec schema; Kubernetes' own, strict, checks it again, and
    the top-level metadata the CRD leaves open is checked as an ObjectMeta."""
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest.doc["metadata"]}
    kubernetes_validate.validate(carrier, version, strict=True)
    for name, group in groups(cluster_spec(manifest.doc)).items():
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                        "metadata": {"name": f"{manifest.doc['metadata']['name']}-{name}"},
                        "template": group["template"]}  # fmt: skip
        kubernetes_validate.validate(pod_template, version, strict=True)


def test_kubernetes_validate_refuses_a_misspelt_core_field() -> None:
    (pvc, *_) = [m.doc for m in core_objects() if m.doc["kind"] == "PersistentVolumeClaim"]
    bad = copy.deepcopy(pvc)
    bad["spec"]["accessMode"] = bad["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_placeholder_secrets_are_marked_and_outside_the_folder_kubectl_applies() -> None:
    for manifest in core_objects():
        if manifest.doc["kind"] != "Secret":
            continue
        assert manifest.file.parent.name == "placeholders", manifest.label
        assert manifest.file.read_text().startswith("# PLACEHOLDERS ONLY: DO NOT APPLY")
        values = {**manifest.doc.get("stringData", {}), **manifest.doc.get("data", {})}
        assert values and all(v.startswith("PLACEHOLDER") for v in values.values())


# ---- placement: keys and actors on their own site ------------------------------------------


def site_names() -> list[str]:
    # jobs.federated.hospital_names' rule (not imported here: it pulls in torch and Ray)
    count = yaml.safe_load((ROOT / "configs" / "federated.yaml").read_text())["federation"][
        "hospitals"
    ]
    return [f"hospital-{i}" for i in range(1, count + 1)]


def test_every_hospital_of_the_default_config_has_its_own_worker_group() -> None:
    spec = the("RayCluster")["spec"]
    assert [group["groupName"] for group in spec["workerGroupSpecs"]] == site_names()
    assert federated_job_config()["federation"]["hospitals"] == len(site_names())


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob"])
def test_each_group_advertises_its_site_and_mounts_only_its_own_secret(kind: str) -> None:
    config = parse_config(federated_job_config())
    prefix = config.federation.site_resource_prefix
    assert prefix is not None and config.security.pki_dir is not None
    pki_dir = str(config.security.pki_dir)
    layout = PkiLayout(config.security.pki_dir)

    for name, group in groups(cluster_spec(the(kind))).items():
        site = "aggregator" if name == "head" else name
        template = group["template"]
        # the Ray resource the job asks for (jobs.federated.site_resources), and nothing else
        assert group["resources"] == {f"{prefix}{site}": "1"}
        assert group["labels"]["securemed.io/site"] == site
        assert template["metadata"]["labels"]["securemed.io/site"] == site
        assert secrets_referenced(template) == {f"securemed-{site}-tls"}

        # the secret lands where load_identity looks for this site's files, under pki_dir
        mount, paths = projected_files(template, "secret", f"securemed-{site}-tls")
        assert mount == pki_dir
        if site == "aggregator":
            expected = {layout.aggregator_cert, layout.aggregator_key}
        else:
            expected = {layout.hospital_cert(site), layout.hospital_key(site)}
        assert {str(PurePosixPath(pki_dir) / p) for p in paths} == {str(p) for p in expected}
        mount, paths = projected_files(template, "configMap", "securemed-federation-ca")
        assert mount == pki_dir and layout.ca_cert.name in paths
        if site == "aggregator":
            assert layout.revocation_list.name in paths  # the aggregator refuses revoked ones


def test_the_report_service_mounts_no_federation_key() -> None:
    spec = cluster_spec(the("RayService"))
    for group in groups(spec).values():
        assert secrets_referenced(group["template"]) == set()
        assert "resources" not in group  # no site resource: no hospital actor can land here


def test_the_job_config_pins_hospitals_and_reads_keys_from_the_mounted_secrets() -> None:
    raw = federated_job_config()
    config = parse_config(raw)
    default = yaml.safe_load((ROOT / "configs" / "federated.yaml").read_text())
    for keys, value in render.FEDERATED_OVERRIDES.items():
        node = raw
        for key in keys:
            node = node[key]
        assert node == value
    assert config.federation.bind_host == "0.0.0.0"
    # everything else is configs/federated.yaml's
    assert raw["training"] == default["training"] and raw["privacy"] == default["privacy"]


# ---- generated blocks: serve.yaml, the sites' spec, the job config ------------------------


def test_no_generated_block_has_drifted_from_its_source() -> None:
    assert render.drift() == []


def test_the_service_deploys_serve_yaml_with_only_the_listen_address_changed() -> None:
    served = yaml.safe_load(the("RayService")["spec"]["serveConfigV2"])
    source = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    assert served["http_options"].pop("host") == "0.0.0.0"
    source["http_options"].pop("host")
    assert served == source


def test_the_rendered_serve_config_is_one_serve_accepts() -> None:
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(yaml.safe_load(the("RayService")["spec"]["serveConfigV2"]))


def test_an_edit_to_serve_yaml_is_caught_then_rendered(tmp_path: Path) -> None:
    for relative in ("deploy", "configs"):
        _copy_tree(ROOT / relative, tmp_path / relative)
    serve = tmp_path / "deploy" / "serve.yaml"
    serve.write_text(serve.read_text().replace("num_replicas: 1", "num_replicas: 3", 1))

    assert render.drift(tmp_path) == [render.KUBERAY / "rayservice-report.yaml"]
    assert render.main(["--check"], root=tmp_path) == 1
    assert render.main([], root=tmp_path) == 0
    assert render.drift(tmp_path) == []
    rendered = (tmp_path / render.KUBERAY / "rayservice-report.yaml").read_text()
    assert "num_replicas: 3" in rendered
    assert rendered.startswith("# The report service")  # the comments around the block stay


def test_render_refuses_a_manifest_without_exactly_one_place_for_the_block() -> None:
    with pytest.raises(ValueError, match="expected one line"):
        render.replace_block("a: 1\n", "serveConfigV2", "x: 1\n", literal=True)


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())


# ---- the image ------------------------------------------------------------------------------


def copied_into_image() -> set[str]:
    """Top-level repository paths the Dockerfile COPYs."""
    copied = set()
    for instruction, arguments in dockerfile():
        if instruction == "COPY":
            *sources, _ = [a for a in arguments.split() if not a.startswith("--")]
            copied |= {PurePosixPath(s).parts[0] for s in sources}
    return copied


def test_every_path_the_dockerfile_copies_exists_and_is_not_docker_ignored() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]  # fmt: skip
    for instruction, arguments in dockerfile():
        if instruction != "COPY":
            continue
        *sources, _ = [a for a in arguments.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(PurePosixPath(source.rstrip("/")).match(p) for p in ignored), source


def test_nothing_private_or_heavy_reaches_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "runs", "certs", "bench-results", "var", "**/*.key"} <= ignored


def test_the_image_is_pinned_offline_unprivileged_and_named_as_the_manifests_say() -> None:
    steps = dockerfile()
    (base,) = [arguments for instruction, arguments in steps if instruction == "FROM"]
    assert base == f"rayproject/ray:{pinned('ray')}-py311-cpu"
    assert pyproject()["project"]["requires-python"].startswith(">=3.11")

    labels = dict(re.findall(r'(\S+)="([^"]*)"', " ".join(a for i, a in steps if i == "LABEL")))
    version = pyproject()["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert f"{labels['org.opencontainers.image.title']}:{version}" == IMAGE

    env = " ".join(arguments for instruction, arguments in steps if instruction == "ENV")
    assert "HF_HUB_OFFLINE=1" in env
    users = [arguments for instruction, arguments in steps if instruction == "USER"]
    assert users[-1] not in {"root", "0"}
    assert any("pip install" in a and "--no-deps ." in a for i, a in steps if i == "RUN")
    assert not {"certs", "runs", "var", "tests"} & copied_into_image()


def test_every_container_runs_the_image_the_dockerfile_builds() -> None:
    def images(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["image"]] if isinstance(node.get("image"), str) else []
            return own + [i for value in node.values() for i in images(value)]
        if isinstance(node, list):
            return [i for item in node for i in images(item)]
        return []

    found = [image for manifest in manifests() for image in images(manifest.doc)]
    assert found and set(found) == {IMAGE}
