"""``incdyn ui [SPEC]``: open the MLflow UI on the spec's store and print the comparison view.

    incdyn ui experiments/quickstart.yaml           # the spec's MLflow store and experiment
    incdyn ui --experiment quickstart --port 5000   # ./mlflow.db (or $MLFLOW_TRACKING_URI)
    incdyn ui SPEC --tracking-uri http://mlflow:5000   # a server: only print its URLs

A local store (SQLite, file store) gets ``mlflow ui`` on 127.0.0.1 (``--host`` to change) and a
free port unless ``--port`` is given; it runs until Ctrl-C. The printed address opens the runs page
in model-training mode on the saved view "incdyn: methods": one row per method run, with method,
setting, seed and the test metrics as columns, sorted by the metric the experiment chooses on
(``test_heldout_mse``, or ``test_mse`` when it chooses on truth), lowest first.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from incdyn.datasets.errors import UserError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``ui`` subcommand to the ``incdyn`` parser's subparsers."""
    p = subparsers.add_parser(
        "ui", help="start the MLflow UI on a spec's store and print the comparison view's URL"
    )
    p.add_argument("spec", nargs="?", help="experiment spec (YAML): its store and experiment")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field (as for incdyn run)",
    )
    p.add_argument("--experiment", help="MLflow experiment name (default: the spec's)")
    p.add_argument("--tracking-uri", help="MLflow store (default: the spec's, else ./mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="UI host (0.0.0.0: all interfaces)")
    p.add_argument("--port", type=int, default=0, help="UI port (default: a free one)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the UI")
    return p


def _target(args: argparse.Namespace) -> tuple[str, list[str] | None]:
    """(tracking URI, experiment names or None for every incdyn experiment of the store)."""
    from incdyn.platform.tracking import resolve_tracking_uri

    if args.spec:
        from incdyn.platform.spec import load_spec

        spec = load_spec(args.spec, args.overrides)
        uri = resolve_tracking_uri(args.tracking_uri or spec.mlflow.tracking_uri)
        return uri, [args.experiment or spec.experiment_name]
    return resolve_tracking_uri(args.tracking_uri), [args.experiment] if args.experiment else None


def _experiments(client: Any, names: list[str] | None, uri: str) -> list[Any]:
    from incdyn.platform.tracking import ROLE_METHOD, TAG_ROLE

    if names is None:
        found = [
            e
            for e in client.search_experiments()
            if client.search_runs(
                [e.experiment_id], f"tags.`{TAG_ROLE}` = '{ROLE_METHOD}'", max_results=1
            )
        ]
        if not found:
            raise UserError("--tracking-uri", f"no incdyn experiment (no method run) in {uri}")
        return found
    found = [client.get_experiment_by_name(n) for n in names]
    missing = [n for n, e in zip(names, found, strict=True) if e is None]
    if missing:
        have = sorted(e.name for e in client.search_experiments())
        raise UserError(
            "--experiment", f"no MLflow experiment {missing[0]!r} in {uri}; experiments: {have}"
        )
    return found


def _latest_parent(client: Any, experiment_id: str) -> str | None:
    from incdyn.platform.tracking import ROLE_EXPERIMENT, TAG_ROLE

    runs = client.search_runs(
        [experiment_id],
        f"tags.`{TAG_ROLE}` = '{ROLE_EXPERIMENT}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def print_urls(client: Any, base_url: str, experiments: list[Any]) -> None:
    """Mark each experiment and print its comparison view and latest comparison figure."""
    from incdyn.platform.tracking import COMPARISON_FIGURE
    from incdyn.platform.ui.view import artifact_url, comparison_url, mark_experiment

    for e in experiments:
        mark_experiment(client, e.experiment_id)
        print(f"compare the methods of {e.name!r}: {comparison_url(base_url, e.experiment_id)}")
        parent = _latest_parent(client, e.experiment_id)
        if parent:
            url = artifact_url(base_url, e.experiment_id, parent, COMPARISON_FIGURE)
            print(f"  comparison figure of its latest run: {url}")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Resolve the store, start the UI (local stores), print the URLs, block until Ctrl-C."""
    from mlflow.tracking import MlflowClient

    from incdyn.platform.ui.server import start_ui, stop_ui

    uri, names = _target(args)  # a bad spec or experiment: a UserError (cli.main)
    client = MlflowClient(uri)
    experiments = _experiments(client, names, uri)
    if uri.startswith(("http://", "https://")):  # a tracking server already serves the UI
        print_urls(client, uri, experiments)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        process, base_url = start_ui(uri, host=args.host, port=args.port, timeout_s=args.timeout)
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"MLflow UI on {uri} at {base_url} (Ctrl-C stops)")
        print_urls(client, base_url, experiments)
        while not stop.wait(1.0) and process.poll() is None:
            pass
    finally:
        stop_ui(process)
    return 0
