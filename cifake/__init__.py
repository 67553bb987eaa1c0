"""cifake: detectors of AI-generated images trained on CIFAKE (FAKE = 1 everywhere).

The public API is imported lazily so that ``import cifake`` (and ``cifake --help``) never pays for
TensorFlow or NumPy:

    import cifake
    detector = cifake.load_detector()            # the shipped detector, as `cifake predict` uses it
    p = detector.predict("photo.jpg")            # P(FAKE) per image: paths, folders, PIL images, arrays
    detector.label(p), detector.threshold, detector.card

and, for training: ``load_config``, ``build_model``, ``train``, ``evaluate``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_detector": "models.detector",
    "Detector": "models.detector",
    "load_config": "config",
    "build_model": "models.registry",
    "train": "training.train",
    "Trainer": "training.train",
    "evaluate": "tasks.evaluate",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module = importlib.import_module(f".{_API[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'cifake' has no attribute {name!r}")
