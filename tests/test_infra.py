"""Cluster infrastructure under infra/: manifests parse and agree with each other and the project.

Offline checks only (no Docker, kubectl or cloud): every YAML parses; the KubeRay RayCluster and
RayJob, the `ray up` config and the MLflow server set-up use the image the Dockerfile builds, ask
for GPUs, point at the same MLflow Service; the RayJob runs a spec that exists with overrides the
spec schema accepts; the `ray up` config passes Ray's own cluster-config schema; docs/cluster.md
names every file.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import itertools
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
DOC = ROOT / "docs" / "cluster.md"
TABLE_SPEC = "experiments/paper/table1.yaml"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _one(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one {kind}, found {len(found)}"
    return found[0]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pin(package: str) -> str:
    """The version pyproject pins with ``==`` for ``package`` (extras ignored)."""
    for dep in _pyproject()["project"]["dependencies"]:
        m = re.match(rf"{re.escape(package)}(\[[^\]]*\])?==([\w.]+)", dep)
        if m:
            return m.group(2)
    raise AssertionError(f"pyproject.toml pins no {package}==")


def _dockerfile() -> str:
    return (INFRA / "Dockerfile").read_text()


def _image_repo() -> str:
    """The repository the Dockerfile's usage line tags: ``docker build ... -t REPO:VERSION-gpu .``."""
    m = re.search(r"-t (\S+):\S+-gpu \.", _dockerfile())
    assert m, "infra/Dockerfile: its usage comment must show `docker build ... -t REPO:TAG-gpu .`"
    return m.group(1)


def _gpu_image() -> str:
    return f"{_image_repo()}:{_pyproject()['project']['version']}-gpu"


def _ray_cluster_specs() -> dict[str, dict]:
    cluster = _one(INFRA / "kuberay" / "raycluster.yaml", "RayCluster")["spec"]
    job = _one(INFRA / "kuberay" / "rayjob.yaml", "RayJob")["spec"]["rayClusterSpec"]
    return {"RayCluster": cluster, "RayJob": job}


def _pod_specs(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def _gpu_groups(cluster_spec: dict) -> list[dict]:
    return [
        g
        for g in cluster_spec["workerGroupSpecs"]
        if any(
            "nvidia.com/gpu" in c["resources"]["limits"]
            for c in g["template"]["spec"]["containers"]
        )
    ]


def _entrypoint() -> list[str]:
    return shlex.split(_one(INFRA / "kuberay" / "rayjob.yaml", "RayJob")["spec"]["entrypoint"])


def _overrides(argv: list[str]) -> dict[str, str]:
    out = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "--set":
            key, text = value.split("=", 1)
            out[key] = text
    return out


def _mlflow_server_args() -> list[str]:
    deployment = _one(INFRA / "mlflow" / "deployment.yaml", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


def _flag(args: list[str], name: str) -> str | None:
    for a in args:
        if a == name:
            return ""
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


# --- every file ---------------------------------------------------------------------------


def test_every_yaml_under_infra_parses():
    files = sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])
    assert len(files) >= 7, files
    for path in files:
        docs = _docs(path)
        assert docs, f"{path.relative_to(ROOT)} is empty"
        assert all(isinstance(d, dict) for d in docs), path


def test_kubernetes_objects_are_complete():
    for path in [
        *sorted((INFRA / "kuberay").glob("*.yaml")),
        *sorted((INFRA / "mlflow").glob("[dp]*.yaml")),
    ]:
        if path.name == "docker-compose.yaml":
            continue
        for doc in _docs(path):
            where = f"{path.relative_to(ROOT)}: {doc.get('kind')}"
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), where
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), where


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_installs_the_project_with_pinned_ray_mlflow_torch():
    text = _dockerfile()
    assert re.search(r"^ARG RAY_VERSION=2\.60\.0$", text, re.M)
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py311-\$\{VARIANT\}$", text, re.M)
    assert re.search(r"^ARG VARIANT=gpu$", text, re.M), "the default build is the CUDA image"
    assert _pin("ray") == "2.60.0"
    install = next(line for line in text.splitlines() if '"mlflow==' in line)
    assert '"ray[default,train,tune,serve]==2.60.0"' in install
    assert f'"mlflow=={_pin("mlflow")}"' in install
    assert install.rstrip(" \\").split()[-1] == ".", "the project itself is installed"
    m = re.search(r"^ARG TORCH_VERSION=([\w.]+)$", text, re.M)
    assert m and m.group(1) == "2.13.0"
    assert "incdyn --help" in text, "the build checks the console script"


def test_dockerignore_keeps_local_state_and_secrets_out():
    lines = {
        line.strip()
        for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "runs", "mlflow.db", "mlruns", "**/.env"} <= lines


def test_every_manifest_uses_the_image_the_dockerfile_builds():
    image = _gpu_image()
    for kind, spec in _ray_cluster_specs().items():
        for pod in _pod_specs(spec):
            for c in pod["containers"]:
                assert c["image"] == image, f"{kind} container {c['name']}: {c['image']} != {image}"
    ray_up = yaml.safe_load((INFRA / "ray-up" / "gcp.yaml").read_text())
    assert ray_up["docker"]["image"] == image
    assert image in DOC.read_text()
    readme = ROOT / "README.md"
    if readme.exists():  # the README may name the image; if it does, the same one
        for ref in re.findall(r"[\w.\-]+(?:/[\w.\-]+)+/incdyn:[\w.\-]+", readme.read_text()):
            assert ref.split(":")[0] == _image_repo(), ref


def test_mlflow_image_pins_the_project_mlflow():
    mlflow = _pin("mlflow")
    text = (INFRA / "mlflow" / "Dockerfile").read_text()
    assert f'"mlflow=={mlflow}"' in text and "psycopg2" in text and "google-cloud-storage" in text
    deployment = _one(INFRA / "mlflow" / "deployment.yaml", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{_image_repo()}-mlflow:{mlflow}"
    assert f"-t {container['image']} " in text, "the Dockerfile's usage line tags the same image"


# --- KubeRay --------------------------------------------------------------------------------


def test_raycluster_and_rayjob_kinds():
    for path, kind in [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")]:
        (doc,) = _docs(INFRA / "kuberay" / path)
        assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", kind)


def test_ray_clusters_have_a_head_a_gpu_group_and_token_auth():
    for kind, spec in _ray_cluster_specs().items():
        assert spec["rayVersion"] == _pin("ray"), kind
        assert spec["authOptions"]["mode"] == "token", kind
        head = spec["headGroupSpec"]
        assert {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]} >= {
            6379,
            8265,
        }
        groups = _gpu_groups(spec)
        assert groups, f"{kind}: no worker group requests nvidia.com/gpu"
        for g in groups:
            for c in g["template"]["spec"]["containers"]:
                limits, requests = c["resources"]["limits"], c["resources"].get("requests", {})
                assert int(limits["nvidia.com/gpu"]) >= 1, kind
                assert (
                    requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"])
                    == limits["nvidia.com/gpu"]
                )
            assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], kind


def test_ray_pods_share_memory_and_credentials():
    for kind, spec in _ray_cluster_specs().items():
        for pod in _pod_specs(spec):
            assert pod["serviceAccountName"] == "incdyn", kind
            volumes = {v["name"]: v for v in pod["volumes"]}
            for c in pod["containers"]:
                mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
                assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", kind
    sa = _one(INFRA / "kuberay" / "serviceaccount.yaml", "ServiceAccount")
    assert sa["metadata"]["name"] == "incdyn"


def test_rayjob_runs_an_experiment_spec_that_exists():
    argv = _entrypoint()
    assert argv[:2] == ["incdyn", "run"] and argv[2].startswith("experiments/"), argv
    assert (ROOT / "experiments" / "quickstart.yaml").exists()
    spec = ROOT / argv[2]
    if argv[2] == TABLE_SPEC and not spec.exists():
        pytest.skip(f"{TABLE_SPEC} is not written yet; the RayJob names it")
    assert spec.exists(), f"the RayJob entrypoint names {argv[2]}, which does not exist"


def test_rayjob_overrides_fit_the_spec_and_the_cluster():
    from incdyn.platform.spec import load_spec

    job = _one(INFRA / "kuberay" / "rayjob.yaml", "RayJob")["spec"]
    argv = _entrypoint()
    sets = _overrides(argv)
    (gpu,) = _gpu_groups(job["rayClusterSpec"])
    worker_cpus = float(gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert sets["ray.use_gpu"] == "true"
    assert int(sets["ray.num_workers"]) == gpu["replicas"] == gpu["minReplicas"]
    assert float(sets["ray.cpus_per_worker"]) < worker_cpus, "one Train worker must fit a pod"
    assert sets["ray.storage_path"].startswith("gs://"), (
        "multi-node checkpoints need shared storage"
    )
    # The overrides name real spec fields (checked on the quick start when the table is absent).
    spec_path = ROOT / argv[2]
    if not spec_path.exists():
        spec_path = ROOT / "experiments" / "quickstart.yaml"
    spec = load_spec(spec_path, [f"{k}={v}" for k, v in sets.items()])
    assert spec.ray.use_gpu and spec.ray.num_workers == gpu["replicas"]
    assert job["shutdownAfterJobFinishes"] is True
    assert job.get("submissionMode", "K8sJobMode") == "K8sJobMode"


def test_rayjob_working_dir_is_the_image_project_folder():
    job = _one(INFRA / "kuberay" / "rayjob.yaml", "RayJob")["spec"]
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    workdir = re.search(r"^WORKDIR (\S+)$", _dockerfile(), re.M).group(1)
    assert runtime_env["working_dir"] == workdir


# --- MLflow ---------------------------------------------------------------------------------


def test_mlflow_server_uses_a_database_and_object_storage():
    args = _mlflow_server_args()
    assert args[:2] == ["mlflow", "server"]
    assert _flag(args, "--backend-store-uri") == "$(MLFLOW_BACKEND_STORE_URI)"
    assert (_flag(args, "--artifacts-destination") or "").startswith("gs://")
    assert _flag(args, "--serve-artifacts") == ""
    assert _flag(args, "--host") == "0.0.0.0"
    deployment = _one(INFRA / "mlflow" / "deployment.yaml", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "incdyn-mlflow-db", "key": "uri"}
    postgres = _one(INFRA / "mlflow" / "postgres.yaml", "StatefulSet")
    pg_env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "incdyn-mlflow-db"


def test_ray_pods_reach_the_mlflow_service_and_it_accepts_their_host_header():
    service = _one(INFRA / "mlflow" / "deployment.yaml", "Service")
    deployment = _one(INFRA / "mlflow" / "deployment.yaml", "Deployment")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{service['metadata']['name']}:{port}"
    assert f"--port={port}" in _mlflow_server_args()
    # MLflow 3 refuses requests whose Host header is not allowed (fnmatch patterns, as it does).
    allowed = _flag(_mlflow_server_args(), "--allowed-hosts").split(",")
    for host in [f"{service['metadata']['name']}:{port}", "localhost:5000"]:
        assert any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed), host
    for kind, spec in _ray_cluster_specs().items():
        for pod in _pod_specs(spec):
            for c in pod["containers"]:
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                assert env.get("MLFLOW_TRACKING_URI") == expected, f"{kind} {c['name']}"


def test_mlflow_compose_for_a_vm():
    compose = yaml.safe_load((INFRA / "mlflow" / "docker-compose.yaml").read_text())
    assert {"postgres", "mlflow"} <= compose["services"].keys()
    mlflow = compose["services"]["mlflow"]
    args = mlflow["command"]
    assert args[:2] == ["mlflow", "server"]
    assert (_flag(args, "--backend-store-uri") or "").startswith("postgresql://")
    assert _flag(args, "--serve-artifacts") == "" and _flag(args, "--artifacts-destination")
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mlflow["build"]["dockerfile"] == "Dockerfile"


# --- ray up ---------------------------------------------------------------------------------


def _ray_up() -> dict:
    return yaml.safe_load((INFRA / "ray-up" / "gcp.yaml").read_text())


def test_ray_up_config_passes_rays_schema():
    jsonschema = pytest.importorskip("jsonschema")
    (ray_dir,) = importlib.util.find_spec("ray").submodule_search_locations  # no `import ray`
    schema = json.loads((Path(ray_dir) / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(_ray_up(), schema)


def test_ray_up_has_a_head_and_gpu_workers_on_gcp():
    cfg = _ray_up()
    assert cfg["provider"]["type"] == "gcp"
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    gpu = {k: v for k, v in workers.items() if v["resources"].get("GPU", 0) >= 1}
    assert gpu, "no worker node type has GPUs"
    cpus = float(_overrides(_entrypoint())["ray.cpus_per_worker"])
    for name, t in gpu.items():
        node = t["node_config"]
        (acc,) = node["guestAccelerators"]
        assert acc["acceleratorCount"] == t["resources"]["GPU"], name
        assert {"onHostMaintenance": "TERMINATE"} in node["scheduling"], name
        assert t["resources"]["CPU"] > cpus, f"{name}: a Train worker with {cpus} CPUs must fit"
        assert t["max_workers"] <= cfg["max_workers"]


def test_ray_up_turns_on_token_auth_and_mlflow():
    cfg = _ray_up()
    options = cfg["docker"]["run_options"]
    assert "-e RAY_AUTH_MODE=token" in options
    assert any(o.startswith("-e MLFLOW_TRACKING_URI=http") for o in options)
    assert "~/.ray/auth_token" in cfg["file_mounts"]
    assert any("--num-cpus=0" in c for c in cfg["head_start_ray_commands"])


# --- docs -----------------------------------------------------------------------------------


def test_cluster_doc_names_every_infra_file_and_the_workflow():
    text = DOC.read_text()
    files = [p for p in INFRA.rglob("*") if p.is_file() and p.name != ".gitignore"]
    files = [p for p in files if "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in files if str(p.relative_to(ROOT)) not in text]
    assert not missing, f"docs/cluster.md does not mention {missing}"
    for step in [
        "docker build",
        "kubectl apply",
        "ray up",
        "ray job submit",
        "ray job logs",
        "RAY_AUTH_MODE",
        "MLFLOW_TRACKING_URI",
        "incdyn report",
        "gs://",
        "ray down",
        "kubectl delete",
    ]:
        assert step in text, f"docs/cluster.md lacks {step!r}"


def test_readme_links_the_cluster_doc():
    assert "docs/cluster.md" in (ROOT / "README.md").read_text(), (
        "README.md should link docs/cluster.md (Run on a cluster)"
    )
