"""Runs left ``RUNNING`` by a killed process, found on a rerun and marked ``KILLED``.

A run that a SIGKILL interrupts cannot end itself: MLflow shows it ``RUNNING`` for ever. Every
incdyn run records the process that owns it (:mod:`incdyn.platform.owner`), and a rerun of the
same experiment marks the runs of earlier attempts whose owner is gone ``KILLED``, tagged with the
run that replaced them (:func:`reap_ghosts`). A run owned by another host is left as it is.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from incdyn.platform.owner import owner_gone
from incdyn.platform.tracking import TAG_PARENT, TAG_ROLE, TAG_SETTING, TAG_SPEC

TAG_REPLACED_BY = "incdyn.replaced_by"  # on a run marked KILLED: the run of the rerun


def reap_ghosts(
    client: MlflowClient, experiment_id: str, *, spec_name: str, setting: str, role: str,
    replaced_by: str,
) -> list[str]:  # fmt: skip
    """Mark ``KILLED`` the ``RUNNING`` parent runs of ``role`` for this spec and setting whose
    owner is gone, and their ``RUNNING`` children; each is tagged ``incdyn.replaced_by``.
    Returns the ids marked."""
    running = "attributes.status = 'RUNNING'"
    parents = client.search_runs(
        [experiment_id],
        f"{running} and tags.`{TAG_ROLE}` = '{role}' and tags.`{TAG_SPEC}` = '{spec_name}'"
        f" and tags.`{TAG_SETTING}` = '{setting}'",
        max_results=1000,
    )
    marked = []
    for parent in parents:
        if parent.info.run_id == replaced_by or not owner_gone(parent.data.tags):
            continue
        children = client.search_runs(
            [experiment_id],
            f"{running} and tags.`{TAG_PARENT}` = '{parent.info.run_id}'",
            max_results=10000,
        )
        for run in [*children, parent]:
            client.set_tag(run.info.run_id, TAG_REPLACED_BY, replaced_by)
            client.set_terminated(run.info.run_id, "KILLED")
            marked.append(run.info.run_id)
    return marked
