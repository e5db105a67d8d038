"""The HTTP client's wire: binary ``.npy``/``.npz`` bodies by default (options in the query
string, an ``.npz`` answer), JSON on request; the service's own decoders read back exactly the
arrays sent, and both wires give the same answer. No server: a stand-in session answers the way
the service does (binary answer to a binary body, JSON to JSON)."""

from __future__ import annotations

import json
from json import dumps

import numpy as np
import pytest

from incdyn.platform.serve.client import impute
from incdyn.platform.serve.codec import (
    NPY_MAGIC,
    ZIP_MAGICS,
    SampleShape,
    decode_binary,
    decode_json,
    encode_json,
    encode_npz,
    is_binary,
    to_sample,
)

SHAPE = SampleShape(frames=3, channels=("u", "v"), grid=(5, 6))


class Response:
    def __init__(self, content: bytes) -> None:
        self.status_code = 200
        self.content = content

    def json(self):
        return json.loads(self.content)


class Service:
    """Stands in for ``requests.Session``: records each post and answers like the service
    (the "imputation" fills missing points with the channel's observed mean, in float32 like the
    model, whatever the dtype the body carried)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []

    def post(self, url, *, data=None, json=None, params=None, headers=None, timeout=None):
        self.posts.append({"url": url, "data": data, "json": json, "params": params,
                           "headers": headers})  # fmt: skip
        body = dumps(json).encode() if json is not None else data  # as requests sends it
        binary = is_binary(body)
        arrays, options = (decode_binary(body, 2**30), params) if binary else decode_json(body)
        values, mask = to_sample(arrays, SHAPE)
        observed = np.broadcast_to(mask[:, None], values.shape)
        model_units = np.where(observed, values, np.nan).astype(np.float32)
        fill = np.nanmean(model_units, axis=(0, 2, 3), keepdims=True)
        imputed = np.where(observed, values, fill).astype(np.promote_types(values.dtype, "f4"))
        spread = np.where(observed, 0.0, np.abs(fill) + int(options.get("k", 1))).astype("f4")
        result = {"imputed": imputed, "spread": spread, "k": int(options.get("k", 1))}
        return Response(encode_npz(result) if binary else encode_json(result))


def _sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(3, 2, 5, 6)).astype(np.float32)
    mask = rng.random((3, 5, 6)) < 0.4
    mask[0, 0, 0] = True
    return values, mask


@pytest.mark.parametrize("with_mask", [True, False])
def test_default_request_is_a_binary_body_with_options_in_the_query(with_mask):
    values, mask = _sample()
    field = np.where(mask[:, None], values, np.nan)
    service = Service()
    sent = (values, mask) if with_mask else (field, None)
    impute("http://127.0.0.1:1", *sent, k=4, seed=7, session=service)

    (post,) = service.posts
    assert post["json"] is None and isinstance(post["data"], bytes)
    assert post["data"].startswith(ZIP_MAGICS if with_mask else (NPY_MAGIC,))
    assert post["headers"]["Content-Type"] == "application/octet-stream"
    assert post["params"] == {"k": 4, "sampler": "single", "seed": 7}
    got_values, got_mask = to_sample(decode_binary(post["data"], 2**30), SHAPE)
    assert np.array_equal(got_mask, mask)
    obs = np.broadcast_to(mask[:, None], values.shape)
    assert np.array_equal(got_values[obs], values[obs]) and got_values.dtype == sent[0].dtype


def test_json_on_request_sends_the_arrays_the_binary_body_carries():
    values, mask = _sample(1)
    service = Service()
    impute("http://127.0.0.1:1", values, mask, k=2, binary=False, session=service)
    impute("http://127.0.0.1:1", values, mask, k=2, session=service)

    as_json, as_binary = service.posts
    assert as_json["data"] is None and as_json["json"]["k"] == 2
    arrays, options = decode_json(json.dumps(as_json["json"]).encode())
    assert options == {"k": 2, "sampler": "single"}
    from_json = to_sample(arrays, SHAPE)
    from_binary = to_sample(decode_binary(as_binary["data"], 2**30), SHAPE)
    assert np.array_equal(from_json[1], from_binary[1])
    assert np.array_equal(from_json[0], from_binary[0].astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_json_and_binary_answers_agree(dtype):
    values, mask = _sample(2)
    field = np.where(mask[:, None], values, np.nan).astype(dtype)
    service = Service()
    imp_b, spr_b = impute("http://127.0.0.1:1", field, k=3, session=service)
    imp_j, spr_j = impute("http://127.0.0.1:1", field, k=3, binary=False, session=service)
    assert imp_b.dtype == imp_j.dtype == np.promote_types(dtype, np.float32)
    assert spr_b.dtype == spr_j.dtype == np.float32
    np.testing.assert_array_equal(imp_b, imp_j)
    np.testing.assert_array_equal(spr_b, spr_j)
    assert not np.isnan(imp_b).any()  # the answer really was decoded, with missing points filled
