"""Where training runs: threads, the precision policy and the tf.distribute strategy.

``train.py`` asks ``setup_devices`` for (strategy, description) and knows nothing else about the
hardware. The precision comes from ``train.mixed_precision`` and the hardware (GPU compute
capability, the CPU's flags); the strategy is one device, MirroredStrategy over local GPUs, or
MultiWorkerMirroredStrategy from the standard ``TF_CONFIG``.

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
import logging
import os
from dataclasses import dataclass

from ..base.errors import UserError
from ..base.tfutil import BF16_CPU_FLAGS, BF16_ENV, cpu_flags, import_keras, import_tf

log = logging.getLogger(__name__)

TASK_TYPES = ("chief", "worker")  # MultiWorkerMirroredStrategy's; ps/evaluator belong to other strategies


@dataclass(frozen=True)
class Cluster:
    tasks: int  # chief + workers: the processes that train together
    task_type: str
    task_index: int
    has_chief: bool
    leader: str = ""  # host:port of the chief (worker 0 without one): where the others register

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
    except RecursionError:
        raise bad("is nested too deeply to be a cluster description") from None
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
    leader = cluster["chief"][0] if "chief" in cluster else cluster["worker"][0]
    return Cluster(sum(len(v) for v in cluster.values()), kind, index, "chief" in cluster, leader)


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


# --- precision and strategy ---------------------------------------------------------------------


def choose_precision(setting: str, gpu_caps: list[tuple[int, int]], flags: set[str]) -> tuple[str, str]:
    """(Keras dtype policy, why) for ``train.mixed_precision`` on this hardware.

    auto: float16 on GPUs that all have compute capability >= 7.0 (tensor cores), bfloat16 on a CPU
    with AMX-BF16 or AVX512-BF16 (``flags`` from /proc/cpuinfo), float32 otherwise. fp16 / bf16 are
    honoured anywhere, with a note where the hardware emulates them (much slower). ``on`` is the old
    spelling: float16 on a GPU, float32 on a CPU.
    """
    bf16_units = sorted(f for f in BF16_CPU_FLAGS if f in flags)
    if setting == "off":
        return "float32", "train.mixed_precision=off"
    if setting == "bf16":
        note = (
            f"CPU has {'/'.join(bf16_units)}" if bf16_units or gpu_caps else "no AMX-BF16/AVX512-BF16: emulated, slow"
        )
        return "mixed_bfloat16", f"train.mixed_precision=bf16 ({note})"
    if setting == "fp16" or (setting == "on" and gpu_caps):
        return "mixed_float16", f"train.mixed_precision={setting}" + ("" if gpu_caps else " (no GPU: emulated, slow)")
    if setting == "on":
        return "float32", "train.mixed_precision=on means float16 on a GPU; no GPU here"
    if gpu_caps:
        low = min(gpu_caps)
        if low >= (7, 0):
            return "mixed_float16", f"auto: GPU compute capability {low[0]}.{low[1]} >= 7.0"
        return "float32", f"auto: GPU compute capability {low[0]}.{low[1]} < 7.0 (no tensor cores)"
    if bf16_units:
        # measured, one training run each way on 2 cores: AMX Xeon 1.45x, AVX512-BF16 EPYC 1.24x (default
        # recipe) and 1.60x (detector.yaml); docs/benchmarks.md. Where no such table exists, float32.
        measured = "1.45x" if "amx_bf16" in bf16_units else "1.24x"
        return (
            "mixed_bfloat16",
            f"auto: CPU has {'/'.join(bf16_units)}; bfloat16 trained the default recipe {measured} faster than "
            "float32 on such a CPU",
        )
    return "float32", "auto: CPU without AMX-BF16 or AVX512-BF16 (bfloat16 would be emulated, slower)"


def setup_devices(cfg, cluster: Cluster | None = None) -> tuple[object, str]:
    """Threads, precision policy and distribution strategy from the config; returns (strategy, description)."""
    keras = import_keras()

    tf = import_tf()
    if cfg.train.threads:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.train.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cfg.train.threads))
    strategy = None
    if cluster is not None:  # first: the collective ops must be configured before TensorFlow starts its runtime
        strategy = multi_worker_strategy(tf, cluster, cfg.train.cluster_timeout)
    gpus = tf.config.list_physical_devices("GPU")
    parts = []
    caps = []
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        caps = [tuple(tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0))) for g in gpus]
        parts.append(f"{len(gpus)} GPU(s): {', '.join(names)}")
    else:
        parts.append(f"CPU ({cfg.train.threads or os.cpu_count()} threads)")
    policy, why = choose_precision(cfg.train.mixed_precision, caps, cpu_flags())
    keras.mixed_precision.set_global_policy(policy)
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in ("0", "1") and not gpus:
        why += f"; {BF16_ENV}={forced}: as if the CPU {'had' if forced == '1' else 'lacked'} bfloat16 units"
    parts.append(f"{policy} ({why})")
    if strategy is not None:
        n = strategy.num_replicas_in_sync
        parts.append(
            f"MultiWorkerMirroredStrategy: {cluster.describe()}; {n} replicas, global batch {cfg.train.batch_size} "
            f"= {cfg.train.batch_size // n} per replica"
        )
    elif len(gpus) > 1 and cfg.train.distribute in ("auto", "mirrored"):
        strategy = tf.distribute.MirroredStrategy()
        parts.append(f"MirroredStrategy over {strategy.num_replicas_in_sync} replicas")
    else:
        if cfg.train.distribute == "mirrored" and len(gpus) <= 1:
            parts.append("distribute=mirrored needs 2+ GPUs: single device")
        strategy = tf.distribute.get_strategy()
    return strategy, ", ".join(parts)


def multi_worker_strategy(tf, cluster: Cluster, timeout_s: float):
    """MultiWorkerMirroredStrategy, or a UserError naming who did not answer within ``timeout_s``.

    A worker first waits (in Python, so Ctrl-C and SIGTERM work) until the chief's port accepts
    connections, saying whom it waits for. TensorFlow's constructor then blocks in C++, holding the
    GIL, until every task has registered with the coordination service: its registration timeout is
    set to ``timeout_s`` (TensorFlow's default waits for an hour), and Ctrl-C / SIGTERM get their
    default action meanwhile (the kernel ends the process: exit 130 / 143), since Python's handlers
    cannot run then. Nothing has been written yet at this point.
    """
    if not cluster.is_chief:
        wait_for_port(cluster.leader, timeout_s, "the chief")
    from ..base.compat import bound_registration

    bound_registration(timeout_s)
    who = f"the other {cluster.tasks - 1} worker(s) of the cluster (chief {cluster.leader})"
    log.info(f"waiting for {who} to join (at most {timeout_s:g} s) ...")
    import signal

    from ..base.signals import handlers

    with handlers({signal.SIGINT: signal.SIG_DFL, signal.SIGTERM: signal.SIG_DFL}):
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.OpError as e:
            raise UserError(
                f"no answer from {who} within {timeout_s:g} s ({type(e).__name__}): start every worker with the "
                "same TF_CONFIG cluster (train.cluster_timeout sets how long to wait); nothing was written"
            ) from None


def wait_for_port(address: str, timeout_s: float, who: str) -> None:
    """Return once ``host:port`` accepts a TCP connection; UserError after ``timeout_s`` seconds."""
    import socket
    import time

    host, _, port = address.rpartition(":")
    start = time.monotonic()
    said = -1.0
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return
        except OSError:
            pass
        waited = time.monotonic() - start
        if waited >= timeout_s:
            raise UserError(
                f"no answer from {who} at {address} after {timeout_s:g} s: start it, or check TF_CONFIG "
                "(train.cluster_timeout sets how long to wait)"
            )
        if waited - said >= 30 or said < 0:
            log.info(f"waiting for {who} at {address} ({waited:.0f} of {timeout_s:g} s) ...")
            said = waited
        time.sleep(min(1.0, max(0.0, timeout_s - waited)))


def build_for_replicas(model, strategy) -> None:
    """Build the model's metrics and loss from a plain sample batch before ``fit`` sees a distributed
    one (``compat.build_once``: what Keras 3.15 cannot do itself under MultiWorkerMirroredStrategy)."""
    import numpy as np

    from ..base.compat import build_once

    build_once(model, (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 1), np.float32), None), strategy)
