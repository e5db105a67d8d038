"""Ray Serve imputer on a real local Ray: batched answers equal offline imputation with the same
seed, bad requests get a 4xx with a JSON error (and the replica keeps serving), health reports
the shape."""

from __future__ import annotations

import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from incdyn.models.backbones.registry import build_denoiser
from incdyn.models.samplers.single import ensemble_impute
from incdyn.platform.checkpoint import checkpoint_spec, load_denoiser, save_checkpoint
from incdyn.platform.evaluation.calibration import Calibration, save_calibration
from incdyn.platform.sampling import sampler_plan
from incdyn.platform.serve.client import ServeError, health, impute
from incdyn.platform.spec import ExperimentSpec

FRAMES, CHANNELS, GRID = 4, ("u", "v"), (8, 8)
MEAN, STD = [1.0, -2.0], [2.0, 0.5]
MAX_K, MAX_BODY = 8, 256 * 1024
# a calibration as evaluation stores it beside the checkpoint: q grows with the level
CALIBRATION = Calibration(
    channels=CHANNELS, levels=(0.01, 0.5, 0.9, 0.99), q=((0.1, 1.0, 2.0, 3.0), (0.2, 2.0, 4.0, 6.0)),
    n=(100, 100), k=4, sampler="single", fitted_on="val held-out observed points",
)  # fmt: skip


def make_checkpoint(directory: Path, *, seed: int = 0) -> Path:
    """A tiny UNet denoiser with random (not trained) weights, saved like a trained one."""
    backbone = {"name": "unet", "width": 8, "mults": [1, 2], "blocks_per_level": 1,
                "dropout": 0.0, "padding_mode": "circular"}  # fmt: skip
    spec = ExperimentSpec.model_validate(
        {"name": "serve-test", "methods": [{"name": "ours", "ensemble": 4}], "backbone": backbone}
    ).to_dict()
    torch.manual_seed(seed)
    model = build_denoiser(
        spec["backbone"], spec["schedule"], channels=len(CHANNELS), frames=FRAMES
    )
    with torch.no_grad():  # the output gain starts at 0: perturb so that answers are not all 0
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    meta = {
        "spec": spec,
        "method": spec["methods"][0],
        "channels": list(CHANNELS),
        "frames": FRAMES,
        "normalization": {"mean": MEAN, "std": STD},
        "step": 0,
    }
    return save_checkpoint(directory, model=model, optimizer=None, meta=meta)


def make_request(rng: np.random.Generator, *, p: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Physical values ``(T, C, H, W)`` float32 and a static mask ``(T, H, W)``."""
    values = rng.normal(MEAN, STD, size=(FRAMES, *GRID, len(CHANNELS))).astype(np.float32)
    values = values.transpose(0, 3, 1, 2).copy()
    mask = np.broadcast_to(rng.random(GRID) < p, (FRAMES, *GRID)).copy()
    mask[0, 0, 0] = True
    return values, mask


def offline(denoiser, meta, values, mask, *, k, seed):
    """The same request imputed in this process with ``ensemble_impute`` (no batching)."""
    mean = np.asarray(MEAN, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(STD, np.float32).reshape(1, -1, 1, 1)
    x = np.where(mask[:, None], (values - mean) / std, 0).astype(np.float32)
    x = torch.from_numpy(x.transpose(1, 0, 2, 3).copy())[None]
    partition = sampler_plan(*checkpoint_spec(meta)).partition
    g = torch.Generator().manual_seed(seed)
    imp, spr = ensemble_impute(
        denoiser, x, torch.from_numpy(mask)[None], partition, k=k, generator=g
    )
    imp = imp[0].numpy().transpose(1, 0, 2, 3) * std + mean
    return np.where(mask[:, None], values, imp), spr[0].numpy().transpose(1, 0, 2, 3) * std


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    from ray import serve

    from incdyn.platform.serve.app import build_app
    from incdyn.platform.serve.config import ServeConfig

    ckpt = make_checkpoint(tmp_path_factory.mktemp("serve") / "checkpoint")
    save_calibration(ckpt, CALIBRATION)
    port = _free_port()
    config = ServeConfig(
        max_batch_size=8, batch_wait_s=0.02, max_k=MAX_K, max_body_bytes=MAX_BODY, grid=GRID
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(
            build_app(str(ckpt), config=config),
            name="incdyn-test",
            route_prefix="/",
            logging_config={"enable_access_log": False},
        )
        yield f"http://127.0.0.1:{port}", ckpt
    finally:
        serve.shutdown()


def test_health_reports_shape_and_spec(served):
    url, _ = served
    h = health(url)
    assert h["status"] == "ready"
    assert h["shape"] == [FRAMES, len(CHANNELS), *GRID]
    assert h["channels"] == list(CHANNELS)
    assert h["limits"]["max_k"] == MAX_K and h["samplers"] == ["single", "multi", "direct"]
    assert h["spec"]["name"] == "serve-test"
    assert requests.get(url + "/health", timeout=10).json()["shape"] == h["shape"]


def test_serve_handle_gives_the_http_answer(served):
    from ray import serve

    from incdyn.platform.serve.client import impute_remote

    url, _ = served
    handle = serve.get_app_handle("incdyn-test")
    answer = impute_remote(handle, _V, _M, k=3, seed=5).result()
    imputed, spread = impute(url, _V, _M, k=3, seed=5)
    assert answer["seed"] == 5 and answer["k"] == 3
    np.testing.assert_allclose(answer["imputed"], imputed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(answer["spread"], spread, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("with_mask", [True, False])
def test_binary_and_json_wires_give_the_same_answer(served, with_mask):
    url, _ = served
    field = np.where(_M[:, None], _V, np.nan).astype(np.float32)
    sent = (_V, _M) if with_mask else (field, None)
    imp_b, spr_b = impute(url, *sent, k=4, seed=11)  # the default wire: .npy/.npz
    imp_j, spr_j = impute(url, *sent, k=4, seed=11, binary=False)
    assert imp_b.dtype == imp_j.dtype == np.float32 and imp_b.shape == _V.shape
    np.testing.assert_array_equal(imp_b, imp_j)
    np.testing.assert_array_equal(spr_b, spr_j)


def test_concurrent_requests_match_offline_imputation(served):
    url, ckpt = served
    rng = np.random.default_rng(0)
    jobs = []
    for i in range(200):
        values, mask = make_request(rng)
        field = np.where(mask[:, None], values, np.nan).astype(np.float32)
        jobs.append({"i": i, "values": values, "mask": mask, "field": field,
                     "k": (1, 3, 5, 8)[i % 4], "seed": 1000 + i, "json": i % 3 == 0})  # fmt: skip

    def send(job):
        with_mask = job["i"] % 2 == 0
        data = job["values"] if with_mask else job["field"]
        wire = {"binary": False} if job["json"] else {}  # the default: .npy/.npz both ways
        return impute(url, data, job["mask"] if with_mask else None, k=job["k"],
                      seed=job["seed"], **wire)  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, jobs))

    denoiser, meta = load_denoiser(ckpt)
    for job, (imputed, spread) in zip(jobs, answers, strict=True):
        values, mask = job["values"], job["mask"]
        assert imputed.shape == spread.shape == values.shape
        obs = np.broadcast_to(mask[:, None], values.shape)
        assert np.array_equal(imputed[obs], values[obs])  # bit for bit
        assert (spread >= 0).all() and (spread[obs] == 0).all()
        want, want_spread = offline(denoiser, meta, values, mask, k=job["k"], seed=job["seed"])
        np.testing.assert_allclose(imputed, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(spread, want_spread, rtol=1e-4, atol=1e-4)
    assert health(url)["stats"]["largest_batch"] > 1  # requests of many clients were batched


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _json(**body) -> bytes:
    return json.dumps(body).encode()


_V, _M = make_request(np.random.default_rng(1))
_F = np.where(_M[:, None], _V, np.nan)
_partial = _F.copy()
_partial[0, 0, 0, 0] = np.nan
_nan_obs = _V.copy()
_nan_obs[0, 1, 0, 0] = np.nan  # (t, y, x) = (0, 0, 0) is observed
_bomb = io.BytesIO()
np.savez_compressed(_bomb, field=np.zeros((64, 2, 64, 64)))  # 4 MiB inflated, a few KiB sent
_obj = io.BytesIO()
np.save(_obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)

BAD = {
    "ndim": (_json(field=_F[0].tolist()), 422, "4 dims"),
    "batch-axis": (_npz(field=_F[None]), 422, "no batch axis"),
    "shape": (_json(values=_V[:, :, :4].tolist(), mask=_M[:, :4].tolist()), 422, "shape"),
    "channels": (_npz(field=_F[:, :1]), 422, "1 channels, the model has 2"),
    "mask-shape": (_npz(values=_V, mask=_M[0]), 422, "mask must have shape"),
    "nan-observed": (_npz(values=_nan_obs, mask=_M), 422, "NaN or infinite at 1 observed"),
    "nan-some-channels": (_npz(field=_partial), 422, "some channels but not others"),
    "empty-mask": (_json(values=_V.tolist(), mask=np.zeros_like(_M).tolist()), 422, "no observed"),
    "k-too-large": (_json(values=_V.tolist(), mask=_M.tolist(), k=MAX_K + 1), 422, "k=9"),
    "k-zero": (_json(values=_V.tolist(), mask=_M.tolist(), k=0), 422, "k=0"),
    "sampler": (_json(values=_V.tolist(), mask=_M.tolist(), sampler="ddim"), 422, "single"),
    "too-large": (b"{" + b" " * MAX_BODY + b"}", 413, "limit"),
    "npz-bomb": (_bomb.getvalue(), 413, "inflates to"),
    "bad-json": (b'{"field": [1, 2', 400, "undecodable JSON"),
    "not-an-object": (b"[1, 2, 3]", 400, "must be an object"),
    "ragged": (_json(field=[[1.0], [1.0, 2.0]]), 400, "rectangular"),
    "bad-npy": (b"\x93NUMPY\x01\x00garbage", 400, "undecodable binary"),
    "bad-npz": (b"PK\x03\x04garbage", 400, "undecodable binary"),
    "pickled-npy": (_obj.getvalue(), 400, "undecodable binary"),
    "unknown-key": (_json(field=_F.tolist(), K=3), 422, "unknown request keys"),
    "level-high": (_json(field=_F.tolist(), level=1.5), 422, "level must be a number in"),
    "level-text": (_json(field=_F.tolist(), level="ninety"), 422, "level must be a number in"),
    "level-bool": (_json(field=_F.tolist(), level=True), 422, "level must be a number in"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_request_gets_4xx_and_server_keeps_serving(served, name):
    url, _ = served
    body, status, words = BAD[name]
    resp = requests.post(url + "/impute", data=body, timeout=60)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]
    imputed, _ = impute(url, _V, _M, k=2, seed=0)
    obs = np.broadcast_to(_M[:, None], _V.shape)
    assert np.array_equal(imputed[obs], _V[obs])


def test_model_from_mlflow_run(tmp_path):
    import mlflow

    from incdyn.platform.registry.model_source import resolve_checkpoint

    ckpt = make_checkpoint(tmp_path / "checkpoint")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("serve-test")  # the process may hold another store's experiment id
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        mlflow.log_artifacts(str(ckpt), artifact_path="checkpoint")
    assert (resolve_checkpoint(child.info.run_id, uri) / "meta.json").is_file()
    with pytest.raises(FileNotFoundError, match="child run holds it"):
        resolve_checkpoint(parent.info.run_id, uri)
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        resolve_checkpoint(str(tmp_path / "nowhere"), uri)


def test_client_raises_server_error(served):
    url, _ = served
    with pytest.raises(ServeError, match="k=99") as info:
        impute(url, _V, _M, k=99)
    assert info.value.status == 422


def test_intervals_at_a_level_contain_the_mean_and_use_the_calibration(served):
    url, _ = served
    assert health(url)["calibrated"] is True
    obs = np.broadcast_to(_M[:, None], _V.shape)
    for level, q in ((None, (2.0, 4.0)), (0.7, (1.5, 3.0))):  # default 0.9; 0.7 interpolated
        body = {"values": _V.tolist(), "mask": _M.tolist(), "k": 4, "seed": 3}
        if level is not None:
            body["level"] = level
        answer = requests.post(url + "/impute", json=body, timeout=60).json()
        mean, spread = np.asarray(answer["imputed"]), np.asarray(answer["spread"])
        lower, upper = np.asarray(answer["lower"]), np.asarray(answer["upper"])
        assert answer["calibrated"] is True and answer["level"] == (level or 0.9)
        assert (lower <= mean).all() and (mean <= upper).all()
        half = np.asarray(q).reshape(1, -1, 1, 1) * spread
        np.testing.assert_allclose(upper - mean, half, rtol=1e-5, atol=1e-6)
        assert np.array_equal(lower[obs], _V[obs]) and np.array_equal(upper[obs], _V[obs])
        assert (upper - lower)[~obs].max() > 0


def _post_and_close(url: str, body: bytes, *, chunked: bool) -> tuple[int, dict]:
    """POST with ``Connection: close``, the whole body sent before the answer is read (as
    Python's urllib does): the client that saw a reset connection instead of a 413."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        headers = {"Connection": "close", "Content-Type": "application/json"}
        if chunked:
            step = 64 * 1024
            conn.request(
                "POST", "/impute", body=(body[i : i + step] for i in range(0, len(body), step)),
                headers={**headers, "Transfer-Encoding": "chunked"}, encode_chunked=True,
            )  # fmt: skip
        else:
            conn.request("POST", "/impute", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_gets_413_json_not_a_reset(served, chunked):
    url, _ = served
    body = b"{" + b" " * (32 * 2**20) + b"}"  # 32 MiB: far more than the socket buffers hold
    status, answer = _post_and_close(url, body, chunked=chunked)
    assert status == 413 and "over the limit" in answer["error"]
    resp = requests.post(url + "/impute", data=body, timeout=60)  # keep-alive: answered at once
    assert resp.status_code == 413 and "over the limit" in resp.json()["error"]
    imputed, _ = impute(url, _V, _M, k=2, seed=0)  # and the replica keeps serving
    assert imputed.shape == _V.shape


def test_suggest_route_answers_the_offline_choice(served):
    from incdyn.platform.suggest.window import UnitRequest, suggest_window

    url, ckpt = served
    body = {"values": _V.tolist(), "mask": _M.tolist(), "budget": 3, "k": 4, "seed": 5}
    answer = requests.post(url + "/suggest", json=body, timeout=60).json()
    assert answer["frame"] == FRAMES - 1 and answer["unit"] == "point" and answer["k"] == 4
    denoiser, meta = load_denoiser(ckpt)
    x = (_V - np.asarray(MEAN, np.float32).reshape(1, -1, 1, 1)) / np.asarray(
        STD, np.float32
    ).reshape(1, -1, 1, 1)
    x = torch.from_numpy(np.where(_M[:, None], x, 0).astype(np.float32).transpose(1, 0, 2, 3))
    plan = sampler_plan(*checkpoint_spec(meta))
    expected = suggest_window(
        denoiser, plan, x.contiguous(), torch.from_numpy(_M),
        UnitRequest(frame=FRAMES - 1, budget=3), k=4, generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    assert [(p["y"], p["x"]) for p in answer["picks"]] == [(p["y"], p["x"]) for p in expected.picks]
    assert all(not _M[FRAMES - 1, p["y"], p["x"]] for p in answer["picks"])
    np.testing.assert_allclose(
        [p["reduction"] for p in answer["picks"]],
        [p["reduction"] for p in expected.picks],
        rtol=1e-5,
    )


SUGGEST_BAD = {
    "no-budget": ({}, "budget: Field required"),
    "budget-too-large": ({"budget": 10_000}, "budget=10000: there are"),
    "unit": ({"budget": 1, "unit": "satellite"}, "unit: Input should be"),
    "frame": ({"budget": 1, "frame": FRAMES}, f"frame: {FRAMES} lies outside"),
    "noise": ({"budget": 1, "noise": 0}, "noise: Input should be greater than 0"),
    "k-one": ({"budget": 1, "k": 1}, "k: Input should be greater than or equal to 2"),
    "k-large": ({"budget": 1, "k": MAX_K + 1}, f"k={MAX_K + 1} is out of range"),
    "unknown": ({"budget": 1, "budjet": 2}, "budjet: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("name", list(SUGGEST_BAD))
def test_bad_suggest_request_gets_422_and_server_keeps_serving(served, name):
    url, _ = served
    options, words = SUGGEST_BAD[name]
    body = {"values": _V.tolist(), "mask": _M.tolist(), **options}
    resp = requests.post(url + "/suggest", json=body, timeout=60)
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["error"]
    imputed, _ = impute(url, _V, _M, k=2, seed=0)
    assert imputed.shape == _V.shape
