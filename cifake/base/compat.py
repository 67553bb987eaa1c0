"""Every use of a private Keras or TensorFlow name, in one room.

cifake needs four things that neither library offers publicly. Each is written against the minor
versions named in ``TESTED``; pyproject pins both to them for this reason. On other versions each
function checks that the private name still exists before it uses it, and says what breaks when
it does not (a ``UserError`` naming the feature) instead of failing somewhere deep inside Keras:

=========================  =========================================  ==================================
function                   private names used                         what breaks without it
=========================  =========================================  ==================================
``ema_average``            ``optimizer._trainable_variables``,        ``train.ema``: best.keras would hold
                           ``optimizer._model_variables_moving_        the raw weights, not the validated
                           average``                                   average
``bound_registration``     ``tensorflow.python.eager.context``,       ``train.cluster_timeout``: a
                           ``multi_worker_util``,                      multi-worker run would wait for
                           ``TFConfigClusterResolver``, the             missing workers for ever
                           coordination-service protobuf
``build_once``             ``Model._symbolic_build``,                 multi-worker training: Keras
                           ``Model._maybe_symbolic_build``            refuses the first distributed batch
``local_logs_for_multi_``  ``keras.src.backend.tensorflow.trainer.    multi-worker training: every step's
``worker``                 _collective_all_reduce_multi_worker``      logs fail to reduce
=========================  =========================================  ==================================

``tests/test_compat.py`` exercises each one; ``tests/test_house.py`` fails on any private Keras or
TensorFlow name used outside this module.
"""

from __future__ import annotations

import contextlib
import logging

from .errors import UserError
from .tfutil import import_keras, import_tf

log = logging.getLogger(__name__)

TESTED = {"keras": "3.15", "tensorflow": "2.21"}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def untested_versions() -> dict[str, str]:
    """{library: installed version} for each library whose minor version is not the tested one."""
    keras, tf = import_keras(), import_tf()
    found = {"keras": keras.__version__, "tensorflow": tf.__version__}
    return {lib: v for lib, v in found.items() if _minor(v) != TESTED[lib]}


def _missing(feature: str, name: str) -> UserError:
    other = untested_versions()
    installed = ", ".join(f"{lib} {v}" for lib, v in other.items()) or "the installed versions"
    tested = ", ".join(f"{lib} {v}" for lib, v in TESTED.items())
    return UserError(
        f"{feature} needs {name}, which {installed} does not have (written for {tested}): "
        "install the versions pyproject.toml pins, or turn the feature off"
    )


# --- train.ema ------------------------------------------------------------------------------------


def ema_average(optimizer) -> dict[int, object] | None:
    """{id(trainable variable): its moving average} of an optimizer with ``use_ema``; None without.

    The same attributes ``keras.callbacks.SwapEMAWeights`` reads (Keras 3.15).
    """
    if not getattr(optimizer, "use_ema", False):
        return None
    names = ("_trainable_variables", "_model_variables_moving_average")
    if not all(hasattr(optimizer, n) for n in names):
        raise _missing("train.ema (saving the averaged weights)", "optimizer." + " and optimizer.".join(names))
    pairs = zip(optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True)
    return {id(v): a for v, a in pairs}


# --- multi-worker training ------------------------------------------------------------------------


def bound_registration(timeout_s: float) -> None:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would, but with a
    registration timeout, so that a worker that never comes is an error after ``timeout_s``.

    The strategy configures the service only when nothing has (TensorFlow 2.21's
    collective_all_reduce_strategy), so doing it first sets the timeout.
    """
    import_tf()
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
        from tensorflow.python.eager import context
    except ImportError as e:
        raise _missing("train.cluster_timeout", f"tensorflow's private {e.name}") from None

    if context.context().coordination_service is not None:
        return
    spec = TFConfigClusterResolver().cluster_spec()
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in spec.jobs
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=int(timeout_s * 1000),
    )


def build_once(model, sample, strategy) -> None:
    """Build ``model``'s metrics and loss from a plain ``sample`` batch (x, y, sample_weight) and
    tell Keras the build is done.

    Keras 3.15's TensorFlow trainer otherwise builds them from the first batch of the distributed
    dataset by ``strategy.reduce("MEAN", (x, y))``, which MultiWorkerMirroredStrategy refuses for a
    tuple ("Attempt to convert a value (PerReplica ...) to a Tensor").
    """
    if not (hasattr(model, "_symbolic_build") and hasattr(model, "_maybe_symbolic_build")):
        raise _missing("multi-worker training", "Model._symbolic_build and Model._maybe_symbolic_build")
    with strategy.scope():
        model._symbolic_build(data_batch=sample)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


@contextlib.contextmanager
def local_logs_for_multi_worker(strategy):
    """Inside the block, Keras' TensorFlow trainer takes each worker's own step logs under
    MultiWorkerMirroredStrategy instead of reducing them across workers; restored on exit.

    That reduction (``strategy.reduce("MEAN", v, axis=0)``) fails on scalars ("Invalid reduction
    dimension 0"). Every value in the logs comes from a Keras metric whose state is already summed
    over all replicas when read, so the local value is the global one. Other strategies are left alone.
    """
    tf = import_tf()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:
        raise _missing("multi-worker training", "keras.src.backend.tensorflow.trainer") from None
    name = "_collective_all_reduce_multi_worker"
    if not hasattr(tf_trainer, name):
        raise _missing("multi-worker training", f"keras.src.backend.tensorflow.trainer.{name}")
    original = getattr(tf_trainer, name)

    def local(s):
        return False if isinstance(s, tf.distribute.MultiWorkerMirroredStrategy) else original(s)

    setattr(tf_trainer, name, local)
    try:
        yield
    finally:
        setattr(tf_trainer, name, original)
