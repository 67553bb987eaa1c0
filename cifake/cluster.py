"""Multi-worker training: reading the standard ``TF_CONFIG`` and deciding who writes the run.

``TF_CONFIG`` is the JSON that Kubernetes operators (Kubeflow's TFJob), managed training services
and Slurm wrappers set on every machine of a TensorFlow cluster::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

It is validated here, before anything is written: a malformed one is one line and exit 2, not a
hang in TensorFlow's collective setup. The chief (task type ``chief``, else worker 0) is the only
task that writes the run directory; the others write their checkpoints to a temporary folder
that they remove at the end, as TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .errors import UserError

TASK_TYPES = ("chief", "worker")  # MultiWorkerMirroredStrategy's; ps/evaluator belong to other strategies


@dataclass(frozen=True)
class Cluster:
    tasks: int  # chief + workers: the processes that train together
    task_type: str
    task_index: int
    has_chief: bool

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (not self.has_chief and self.task_index == 0)

    def describe(self) -> str:
        role = "chief" if self.is_chief else "not chief: writes to a temporary folder"
        return f"{self.tasks} workers, this is {self.task_type} {self.task_index} ({role})"


def parse_tf_config(text: str) -> Cluster:
    """A validated ``Cluster`` from the text of ``TF_CONFIG``; UserError naming what is wrong."""

    def bad(why: str) -> UserError:
        return UserError(f"TF_CONFIG {why}")

    try:
        data = json.loads(text)
    except ValueError as e:
        raise bad(f"is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise bad("must be a JSON object with 'cluster' and 'task'")
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad('has no \'cluster\' object (e.g. {"worker": ["host1:12345", "host2:12345"]})')
    if not isinstance(task, dict):
        raise bad('has no \'task\' object (e.g. {"type": "worker", "index": 0})')
    other = sorted(set(cluster) - set(TASK_TYPES))
    if other:
        raise bad(f"names task types {other}: multi-worker training uses only 'chief' and 'worker'")
    for kind, hosts in cluster.items():
        if (
            not isinstance(hosts, list)
            or not hosts
            or not all(isinstance(h, str) and h.rpartition(":")[2].isdigit() for h in hosts)
        ):
            raise bad(f'cluster.{kind} must be a non-empty list of "host:port" strings, got {str(hosts)[:80]}')
    if len(cluster.get("chief", [])) > 1:
        raise bad("may hold at most one chief")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise bad(f"task.type {kind!r} is not one of the cluster's task types {sorted(cluster)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise bad(f"task.index {index!r} is out of range: cluster.{kind} has {len(cluster[kind])} entr(ies)")
    return Cluster(sum(len(v) for v in cluster.values()), kind, index, "chief" in cluster)


def cluster_from_env(distribute: str) -> Cluster | None:
    """The cluster this process belongs to, or None for single-machine training.

    ``multi_worker`` requires a TF_CONFIG; ``auto`` uses one when it lists more than one task;
    ``none`` and ``mirrored`` ignore it (and say so only through the devices line).
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if distribute == "multi_worker":
        if not text:
            raise UserError(
                "train.distribute=multi_worker needs the TF_CONFIG environment variable on every worker "
                "(see the README, 'Training on several machines')"
            )
        return parse_tf_config(text)
    if distribute == "auto" and text:
        cluster = parse_tf_config(text)
        return cluster if cluster.tasks > 1 else None
    return None
