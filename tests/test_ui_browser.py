"""The methods compared in MLflow's own UI, as a person opens it: ``incdyn ui SPEC`` over a
finished run, the address it prints opened in a fresh headless Chromium (the Debian ``chromium``
package driven by Playwright; no browser is downloaded). Screenshots are kept in
``tests/artifacts/`` (``$INCDYN_TEST_ARTIFACTS`` to change).

Data without truth (an xarray file's real gaps) is compared on held-out observed points: its view
is checked on method runs logged as ``incdyn run`` logs them, with made-up scores (nothing trains).

A missing Chromium or Playwright fails these tests: ``bash infra/dev.sh test`` (the CI command)
installs both.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

CHROMIUM = Path(os.environ.get("INCDYN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("INCDYN_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
# headless, and quiet on a machine without network (no update, sync or field-trial requests)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000  # page loads on a busy 2-core machine


@pytest.fixture(scope="module")
def browser():
    """A fresh Chromium profile (nothing remembered from an earlier visit)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install the Debian package (apt-get install chromium; "
            "`bash infra/dev.sh test` does it) or set INCDYN_CHROMIUM"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]'")
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1600, "height": 900},
        )
        yield context
        context.close()


def _incdyn() -> list[str]:
    script = shutil.which("incdyn", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "incdyn.platform.cli"]


@pytest.fixture(scope="module")
def ui(comparison_run):
    """``incdyn ui SPEC`` running; yields the addresses it printed."""
    spec_path, _, _ = comparison_run
    yield from _ui_addresses(str(spec_path))


# a real-gaps experiment's method runs: test_heldout_mse (there is no truth) and coverages, whose
# names sort before it
REAL_GAPS = {
    "ours": {"test_heldout_mse": 0.030, "test_coverage_50_heldout": 0.41,
             "test_coverage_90_heldout": 0.83},
    "dineof": {"test_heldout_mse": 0.210},
    "telea": {"test_heldout_mse": 0.435},
}  # fmt: skip


@pytest.fixture(scope="module")
def real_gaps_ui(tmp_path_factory):
    """``incdyn ui`` on a store holding a real-gaps experiment's runs; yields (addresses, runs)."""
    from conftest import tiny_spec

    from incdyn.platform.spec import parse_spec
    from incdyn.platform.tracking import (
        ROLE_EXPERIMENT,
        ROLE_METHOD,
        log_evaluation,
        run_scope,
        start_child,
        start_parent,
    )

    tmp = tmp_path_factory.mktemp("real-gaps")
    methods = [{"name": "ours", "ensemble": 2}, {"name": "dineof", "kind": "dineof"},
               {"name": "telea", "kind": "telea"}]  # fmt: skip
    raw = tiny_spec(tmp=tmp, name="real-gaps", methods=methods, p=None)
    raw["data"] |= {"source": "xarray", "preset": "default", "params": {
        "url": str(tmp / "sst.nc"), "variables": ["sst"], "dims": ["t", "lat", "lon"],
        "window": 4, "stride": 2, "split": [0.5, 0.25, 0.25], "gaps": "real"}}  # fmt: skip
    spec = parse_spec(raw)
    assert spec.evaluation.criterion == "val_heldout_mse"
    client = MlflowClient(spec.mlflow.tracking_uri)
    exp = client.create_experiment(spec.experiment_name, artifact_location=(tmp / "a").as_uri())
    parent = start_parent(client, exp, spec, role=ROLE_EXPERIMENT, run_name="real-gaps")
    runs = {}
    with run_scope(client, parent):
        for name, metrics in REAL_GAPS.items():
            run = start_child(
                client, exp, parent, spec, spec.method(name), role=ROLE_METHOD, run_name=name
            )
            with run_scope(client, run):
                log_evaluation(client, run, metrics)
            runs[name] = run
    args = ["--experiment", spec.experiment_name, "--tracking-uri", spec.mlflow.tracking_uri]
    for urls in _ui_addresses(*args):
        yield urls, runs


def _ui_addresses(*args: str):
    """``incdyn ui ARGS`` running; yields the addresses it printed, then stops it."""
    process = subprocess.Popen(
        [*_incdyn(), "ui", *args], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    urls: dict[str, str] = {}
    try:
        while "figure" not in urls:
            try:
                line = lines.get(timeout=TIMEOUT_MS / 1000)
            except queue.Empty:
                pytest.fail(f"incdyn ui printed no address (so far: {urls})")
            print(line, end="")
            if line.startswith("compare the methods of"):
                urls["view"] = line.rsplit(": ", 1)[1].strip()
            elif "comparison figure" in line:
                urls["figure"] = line.rsplit(": ", 1)[1].strip()
        yield urls
    finally:
        process.send_signal(signal.SIGTERM)  # incdyn ui stops the MLflow server it started
        process.wait(timeout=60)


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_the_printed_address_shows_every_method_with_its_test_scores(ui, browser, comparison_run):
    _, spec, _ = comparison_run
    client = MlflowClient(spec.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(spec.experiment_name)
    runs = client.search_runs([experiment.experiment_id], "tags.`incdyn.role` = 'method'")
    assert {r.data.tags["incdyn.method"] for r in runs} == {"ours", "missdiff", "ns_inpaint"}
    page = browser.new_page()
    page.goto(ui["view"])
    for run in runs:
        row = page.locator(f"div[role=row][row-id='{run.info.run_id}']")
        method = row.locator("[col-id='tags.`incdyn.method`']")
        method.wait_for(timeout=TIMEOUT_MS)
        assert method.inner_text().strip() == run.data.tags["incdyn.method"]
        assert row.locator("[col-id='tags.`incdyn.seed`']").inner_text().strip() == "0"
        shown = row.locator("[col-id='metrics.`test_mse`']").inner_text().strip()
        assert float(shown) == pytest.approx(run.data.metrics["test_mse"], rel=1e-6)
    # one row per method run (no collapsed parent), best first on the metric the experiment
    # chooses on: held-out observed points (the default evaluation.holdout), truth beside it
    assert spec.evaluation.criterion == "val_heldout_mse"
    order = sorted(runs, key=lambda r: r.data.metrics["test_heldout_mse"])
    for i, run in enumerate(order):
        index = page.locator(f"div[role=row][row-id='{run.info.run_id}']").first
        assert index.get_attribute("row-index") == str(i)
    parent = runs[0].data.tags["mlflow.parentRunId"]
    assert page.locator(f"div[role=row][row-id='{parent}']").count() == 0
    close = page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count():  # the assistant panel takes a third of the page: close it for the picture
        close.first.click()
    _screenshot(page, "comparison_view.png")
    page.close()


def test_the_parent_run_shows_the_comparison_figure(ui, browser):
    page = browser.new_page()
    page.goto(ui["figure"])
    page.get_by_text("figures/comparison.png").first.wait_for(timeout=TIMEOUT_MS)
    image = page.locator("img[src^='blob:']").first  # the artifact viewer's preview
    image.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert image.evaluate("img => img.naturalWidth") > 400  # the figure, not an icon
    _screenshot(page, "comparison_figure.png")
    page.close()


def test_data_without_truth_is_sorted_and_led_by_its_held_out_score(real_gaps_ui, browser):
    """No run has ``test_mse``: the view sorts on ``test_heldout_mse``, best first, and shows it
    as the first metric column."""
    urls, runs = real_gaps_ui
    page = browser.new_page()
    page.goto(urls["view"])
    best_first = sorted(runs, key=lambda name: REAL_GAPS[name]["test_heldout_mse"])
    assert best_first == ["ours", "dineof", "telea"]
    for i, name in enumerate(best_first):
        row = page.locator(f"div[role=row][row-id='{runs[name]}']")
        method = row.locator("[col-id='tags.`incdyn.method`']")
        method.wait_for(timeout=TIMEOUT_MS)
        assert method.inner_text().strip() == name
        assert row.first.get_attribute("row-index") == str(i)
        shown = row.locator("[col-id='metrics.`test_heldout_mse`']").inner_text().strip()
        assert float(shown) == pytest.approx(REAL_GAPS[name]["test_heldout_mse"])
    # the UI orders metric columns by name: none that sorts before it is shown
    header = page.locator("[role=columnheader][col-id^='metrics.']")
    metric_ids = [header.nth(i).get_attribute("col-id") for i in range(header.count())]
    assert metric_ids and metric_ids[0] == "metrics.`test_heldout_mse`", metric_ids
    _screenshot(page, "comparison_view_real_gaps.png")
    page.close()
