"""Two Ray nodes on this machine, one DDP worker on each .

``ray.cluster_utils.Cluster`` starts a head node and a second node (a raylet each, 1 CPU each)
on this machine; ``ray.num_workers=2, ray.cpus_per_worker=1`` then leaves Ray Train one place
for a worker on each node. ``$INCDYN_PROBE_DIR`` makes every worker write what it did
(platform/train/probe.py): its node, the sample indices it read and a checksum of its parameters.

Storage for multi-node runs: ``ray.storage_path`` (checkpoints), ``data.store`` and the MLflow
store must be reachable from every node. On one machine a local tmp dir is shared by both
nodes; on a real cluster use a shared file system path (NFS) or a cloud URI such as
``gs://bucket/runs`` (Ray Train writes through pyarrow, the store is read through fsspec), and
an ``mlflow server`` instead of a sqlite file.
"""

from __future__ import annotations

import pytest
import ray
from conftest import tiny_spec
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from incdyn.platform.experiment.run import run_experiment
from incdyn.platform.spec import parse_spec
from incdyn.platform.tracking import ROLE_METHOD, TAG_ROLE
from incdyn.platform.train.probe import read_probes

N_TRAIN = 16  # two shards of 8; batch 2 per worker -> one epoch is 4 steps


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node of 1 CPU each; the session's local Ray is restarted afterwards."""
    had_local = ray.is_initialized()
    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if had_local:  # as tests/conftest.py's ray_local started it
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")


@pytest.fixture(scope="module")
def trained(two_nodes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multinode")
    spec = parse_spec(
        tiny_spec(
            tmp=tmp,
            name="two-nodes",
            n_train=N_TRAIN,
            steps=4,
            log_every=2,
            checkpoint_every=4,
            val_samples=2,
            workers=2,
            cpus_per_worker=1,
            experiment="two-nodes",
            evaluation={"max_samples": 2, "figure": False},
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INCDYN_PROBE_DIR", str(tmp / "probe"))
        rows = run_experiment(spec, progress=False)
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    return spec, rows, read_probes(tmp / "probe"), alive


def test_the_run_finishes_on_the_two_node_cluster(trained):
    spec, rows, _, alive = trained
    assert len(alive) == 2
    client = MlflowClient(spec.mlflow.tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("two-nodes").experiment_id],
        f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["ray.num_workers"] == "2"
    assert rows[0]["test_mse"] > 0


def test_one_worker_on_each_node(trained):
    _, _, probes, alive = trained
    assert sorted(probes) == [0, 1]
    assert all(p["world"] == 2 and p["step"] == 4 for p in probes.values())
    assert {p["node_id"] for p in probes.values()} == alive  # two different nodes


def test_the_workers_read_disjoint_shards_that_cover_the_split(trained):
    _, _, probes, _ = trained
    seen = [probes[r]["indices"]["0"] for r in (0, 1)]  # epoch 0: the whole run
    assert all(len(s) == len(set(s)) == N_TRAIN // 2 for s in seen)
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(N_TRAIN))


def test_gradients_were_all_reduced(trained):
    """Different data and losses on each rank, yet identical parameters after every step."""
    _, _, probes, _ = trained
    r0, r1 = probes[0]["reports"], probes[1]["reports"]
    assert [r["step"] for r in r0] == [r["step"] for r in r1] == [2, 4]
    for a, b in zip(r0, r1, strict=True):
        assert a["param_sha256"] == b["param_sha256"]
    assert r0[0]["param_sha256"] != r0[1]["param_sha256"]  # the parameters did move
    assert any(a["train_loss"] != b["train_loss"] for a, b in zip(r0, r1, strict=True))
