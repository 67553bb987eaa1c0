"""Old names and values cifake still accepts for one release, in one table, each with its warning
(as ultralytics' ``cfg._handle_deprecation`` keeps its renamed keys in one place).

Readers look a value up with ``renamed(where, value)``: ``where`` is ``"model"`` for a model name
(``--model``, ``load_detector``, any checkpoint argument) or a config key. ``warn`` says the
message once per process (a resumed run's config.yaml read three times says it once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Renamed:
    where: str  # "model", or a config key such as "train.mixed_precision"
    old: str
    new: str  # what to write instead
    means: str  # what the old spelling does until it goes

    @property
    def message(self) -> str:
        what = f"'{self.old}'" if self.where == "model" else f"{self.where}: {self.old}"
        return f"note: {what} {self.means}; it will be removed in the next release: use '{self.new}'"


RENAMED: tuple[Renamed, ...] = (
    Renamed(
        "model",
        "robust",
        "pretrained",
        "now names the one shipped detector (the same file as 'pretrained', accurate and robust at once)",
    ),
    Renamed(
        "train.mixed_precision",
        "on",
        "auto",
        "is the old spelling of float16 on GPUs and float32 on CPUs (auto picks float16 on GPUs of compute "
        "capability >= 7.0 and bfloat16 on CPUs with bfloat16 units; fp16 forces float16)",
    ),
)

_said: set[tuple[str, str]] = set()


def forget() -> None:
    """Say every message again from now on (each ``cifake`` command, each test, is a fresh start)."""
    _said.clear()


def renamed(where: str, value: object) -> Renamed | None:
    """The table's entry for ``value`` at ``where``, or None when it is not an old spelling."""
    return next((r for r in RENAMED if r.where == where and r.old == value), None)


def old_names(where: str) -> list[str]:
    """Every old spelling still accepted at ``where`` (for choices and help texts)."""
    return [r.old for r in RENAMED if r.where == where]


def warn(where: str, value: object) -> Renamed | None:
    """``renamed``, and its message logged (a warning) the first time this process meets it."""
    r = renamed(where, value)
    if r is not None and (where, r.old) not in _said:
        _said.add((where, r.old))
        log.warning(r.message)
    return r
