"""cifake/base/compat.py: each private Keras / TensorFlow use checked against the installed versions.

If one of these fails after an upgrade, the feature named in the test is what broke: fix the
function in compat.py (and TESTED), not its callers.
"""

from __future__ import annotations

import numpy as np
import pytest

from cifake.base import compat
from cifake.base.errors import UserError
from cifake.base.tfutil import import_keras, import_tf


def tiny_model(ema: bool):
    keras = import_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1, activation="sigmoid")])
    opt = keras.optimizers.Adam(0.1, use_ema=ema, ema_momentum=0.5)
    model.compile(opt, "binary_crossentropy")
    return model


def test_the_installed_versions_are_the_tested_ones():
    assert compat.untested_versions() == {}, "pyproject pins keras and tensorflow to compat.TESTED"


def test_ema_average_is_what_keras_own_callback_swaps_in():
    """train.ema: the average read from the optimizer is the one SwapEMAWeights validates with."""
    keras = import_keras()
    model = tiny_model(ema=True)
    rng = np.random.default_rng(0)
    for _ in range(5):  # train_on_batch: fit's end would copy the average into the weights
        model.train_on_batch(rng.normal(size=(8, 4)), rng.integers(0, 2, (8, 1)))
    average = compat.ema_average(model.optimizer)
    ours = [average.get(id(v), v).numpy() for v in model.weights]
    live = [w.copy() for w in model.get_weights()]
    assert any(not np.allclose(a, b) for a, b in zip(ours, live, strict=True)), "the average equals the live weights"
    swap = keras.callbacks.SwapEMAWeights()
    swap.set_model(model)
    swap.on_test_begin()
    try:
        for a, b in zip(ours, model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
    finally:
        swap.on_test_end()
    for a, b in zip(live, model.get_weights(), strict=True):  # swapped back (by arithmetic: to rounding)
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_ema_average_without_ema_is_none_and_a_changed_optimizer_names_the_feature():
    assert compat.ema_average(tiny_model(ema=False).optimizer) is None

    class Renamed:  # what a Keras that renamed the private attributes would look like
        use_ema = True

    with pytest.raises(UserError, match=r"train\.ema .*_model_variables_moving_average.*written for keras 3\.15"):
        compat.ema_average(Renamed())


def test_local_logs_patch_applies_to_multi_worker_only_and_is_restored():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    tf = import_tf()
    original = tf_trainer._collective_all_reduce_multi_worker
    multi = object.__new__(tf.distribute.MultiWorkerMirroredStrategy)  # isinstance without a cluster
    with compat.local_logs_for_multi_worker(tf.distribute.get_strategy()):
        assert tf_trainer._collective_all_reduce_multi_worker is original  # other strategies: untouched
    with compat.local_logs_for_multi_worker(multi):
        assert tf_trainer._collective_all_reduce_multi_worker(multi) is False
    assert tf_trainer._collective_all_reduce_multi_worker is original
    with pytest.raises(RuntimeError), compat.local_logs_for_multi_worker(multi):
        raise RuntimeError("fit failed")
    assert tf_trainer._collective_all_reduce_multi_worker is original  # restored after an error too


def test_build_once_builds_metrics_and_turns_keras_own_build_off():
    keras = import_keras()
    tf = import_tf()
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten()])
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile("adam", "binary_crossentropy", metrics=[keras.metrics.BinaryAccuracy()])
    assert not model._compile_metrics.built  # private, read here only to see the effect
    sample = (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 1), np.float32), None)
    compat.build_once(model, sample, tf.distribute.get_strategy())
    assert model._compile_metrics.built and model._compile_loss.built
    assert model._maybe_symbolic_build(data_batch=sample) is None


def test_bound_registration_finds_the_private_tensorflow_names_it_uses():
    """train.cluster_timeout (exercised end to end by test_cluster_wait.py): the names still exist."""
    import_tf()
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.python.eager import context

    assert hasattr(coordination_config_pb2, "CoordinatedJob")
    assert callable(multi_worker_util.coordination_leader) and callable(TFConfigClusterResolver)
    ctx = context.context()
    assert hasattr(ctx, "coordination_service") and callable(ctx.configure_coordination_service)
