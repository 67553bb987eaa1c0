"""The subcommands of ``cifake``: one module each, and this list is the only place that names them.

Every module here holds ``HELP`` (one line for ``cifake --help``), ``DESCRIPTION`` and ``EXAMPLE``
(for ``cifake NAME --help``), ``add_arguments(parser)`` (its options) and ``run(args) -> int``.
A command module imports only the library (``cifake.*`` outside this folder) and ``_options``,
never another command, and imports TensorFlow only inside ``run``: ``cli`` imports every command
module to build the parser, so ``--help`` stays instant. Adding a command = one module here and its
name below; the parser, the dispatch and the tests take the list from here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# in the order `cifake --help` lists them: the data flow, then the tools around it
NAMES: tuple[str, ...] = (
    "download",
    "train",
    "evaluate",
    "predict",
    "export",
    "explain",
    "serve",
    "fakes",
    "generators",
    "eda",
    "runs",
    "cache",
    "config",
)


def load(name: str) -> ModuleType:
    """The module of command ``name`` (cheap: command modules import nothing heavy at the top)."""
    return importlib.import_module(f".{name}", __name__)
