"""Clients of the imputation service: HTTP (``impute``, ``health``) and a Serve handle.

    from incdyn.platform.serve.client import impute, health
    imputed, spread = impute("http://127.0.0.1:8000", field)            # NaN = missing
    imputed, spread = impute(url, values, mask, k=16, seed=0)            # mask (T, H, W)

Requests go as a binary body by default (``.npy`` for a field, ``.npz`` for values and mask, the
options in the query string) and the answer comes back as ``.npz``; ``binary=False`` sends and
reads JSON instead (the same answer). Inside the cluster,
``impute_remote(serve.get_app_handle("incdyn"), field)`` skips HTTP.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import requests

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


class ServeError(RuntimeError):
    """The service refused a request (``status`` 4xx) or failed on it (5xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _nested(arr: np.ndarray) -> list:
    """Nested lists with ``None`` (JSON ``null``) where ``arr`` is NaN."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        obj = arr.astype(object)
        obj[np.isnan(arr)] = None
        return obj.tolist()
    return arr.tolist()


def binary_body(values: np.ndarray, mask: np.ndarray | None) -> bytes:
    """The request's arrays as the service reads them: the field as ``.npy``, or ``values`` and
    ``mask`` as an uncompressed ``.npz``."""
    buf = io.BytesIO()
    if mask is None:
        np.save(buf, values, allow_pickle=False)
    else:
        np.savez(buf, values=values, mask=np.asarray(mask))
    return buf.getvalue()


def json_body(values: np.ndarray, mask: np.ndarray | None, options: dict[str, Any]) -> dict:
    """The request as a JSON object: options, and the arrays as nested lists (NaN as null)."""
    body: dict[str, Any] = dict(options)
    if mask is None:
        body["field"] = _nested(values)
    else:
        body["values"] = _nested(values)
        body["mask"] = np.asarray(mask, dtype=bool).tolist()
    return body


def _raise_for(resp: requests.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        message = resp.json().get("error", resp.text)
    except ValueError:
        message = resp.text
    raise ServeError(resp.status_code, message)


def impute(
    url: str,
    field_or_values: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    k: int | None = None,
    sampler: str = "single",
    seed: int | None = None,
    binary: bool = True,
    session: requests.Session | None = None,
    timeout: float = 300.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Impute one sample ``(time, channel, y, x)``; returns ``(imputed, spread)`` like it.

    Args:
        url: the service root, e.g. ``http://127.0.0.1:8000``.
        field_or_values: the field with NaN at missing points, or the values when ``mask`` is given.
        mask: bool ``(T, H, W)``, True where observed (shared by all channels).
        k: ensemble size (server default: the method's).
        sampler: ``"single"`` (the server lists the others it knows in ``health(url)``).
        seed: makes the answer reproducible; the server draws one when None.
        binary: send ``.npy``/``.npz`` and read an ``.npz`` answer (default: no text encoding
            of the arrays either way), or send and read JSON (False).
        session: a ``requests.Session`` to reuse connections.
    Raises:
        ServeError: the server's 4xx/5xx answer, with its error message.
    """
    values = np.asarray(field_or_values)
    options = {"k": k, "sampler": sampler, "seed": seed}
    options = {key: v for key, v in options.items() if v is not None}
    post = (session or requests).post
    endpoint = url.rstrip("/") + "/impute"
    if binary:
        resp = post(
            endpoint,
            data=binary_body(values, mask),
            params=options,
            headers=OCTET_STREAM,
            timeout=timeout,
        )
        _raise_for(resp)
        with np.load(io.BytesIO(resp.content), allow_pickle=False) as npz:
            return npz["imputed"], npz["spread"]
    resp = post(endpoint, json=json_body(values, mask, options), timeout=timeout)
    _raise_for(resp)
    answer = resp.json()
    dtype = np.promote_types(values.dtype, np.float32)
    return np.asarray(answer["imputed"], dtype=dtype), np.asarray(answer["spread"], np.float32)


def health(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The service's readiness report: shape ``(T, C, H, W)``, channels, limits, spec."""
    resp = requests.get(url.rstrip("/") + "/healthz", timeout=timeout)
    _raise_for(resp)
    return resp.json()


def impute_remote(
    handle: Any,
    field_or_values: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    k: int | None = None,
    sampler: str = "single",
    seed: int | None = None,
):
    """In-cluster call through a Serve ``DeploymentHandle`` (``serve.get_app_handle(name)``).

    Returns the ``DeploymentResponse``: ``await`` it inside a deployment, ``.result()`` elsewhere;
    it resolves to ``{"imputed", "spread", "k", "seed", "sampler"}`` (numpy arrays).
    """
    return handle.impute.remote(field_or_values, mask, k=k, sampler=sampler, seed=seed)
