"""How the library talks: ``logging``, never ``print``.

Every module logs to a child of the ``cifake`` logger (``logging.getLogger(__name__)``). The library
installs no handler of its own beyond a ``NullHandler``: a Python user of ``cifake.train`` or
``Detector.predict`` sees nothing unless they configure logging (``logging.basicConfig(level="INFO")``
shows what the CLI shows), and can silence or redirect any part of it by the logger's name.

The ``cifake`` command installs the handlers (``setup``) so that its output is what it always was:

- records of level INFO and DEBUG go to **stdout**, as the run's report (epoch lines, tables);
- WARNING and above go to **stderr** (notes, warnings);
- records of the ``cifake.status`` logger (``progress.say``: what a long command is doing, e.g.
  "fakes: fitting vae ...") go to **stderr** at any level, so that stdout stays for results
  (``cifake predict DIR > scores.csv``).

``--quiet`` shows warnings and errors only; ``--verbose`` adds DEBUG records.
"""

from __future__ import annotations

import contextlib
import logging
import sys

ROOT = "cifake"
STATUS = "cifake.status"
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


def _to_stderr(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name == STATUS or record.name.startswith(STATUS + ".")


class _StreamHandler(logging.Handler):
    """Writes each record's message to the stream that is ``sys.stdout`` / ``sys.stderr`` *at that
    moment* (a test's captured stream, a reconfigured one), flushed at once."""

    def __init__(self, stderr: bool):
        super().__init__()
        self.stderr = stderr
        self.addFilter(lambda r: _to_stderr(r) == stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if self.stderr else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except BrokenPipeError:
            raise
        except Exception:  # noqa: BLE001 - logging's own policy for a handler that fails
            self.handleError(record)


def setup(verbosity: str = "normal") -> None:
    """Route the ``cifake`` logger as the command line shows it (see module docstring); idempotent."""
    logger = logging.getLogger(ROOT)
    for h in [h for h in logger.handlers if isinstance(h, _StreamHandler)]:
        logger.removeHandler(h)
    logger.addHandler(_StreamHandler(stderr=False))
    logger.addHandler(_StreamHandler(stderr=True))
    logger.setLevel(LEVELS[verbosity])
    logger.propagate = False


@contextlib.contextmanager
def routed(verbosity: str = "normal"):
    """``setup`` for the duration of a block (one ``cifake`` command), then the logger as it was."""
    logger = logging.getLogger(ROOT)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    setup(verbosity)
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def teardown() -> None:
    """Back to the library's default: no output unless the caller configured logging."""
    logger = logging.getLogger(ROOT)
    for h in [h for h in logger.handlers if isinstance(h, _StreamHandler)]:
        logger.removeHandler(h)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def showing(logger: logging.Logger, level: int = logging.INFO) -> bool:
    """Whether a record of ``level`` on ``logger`` would reach a handler: a progress bar is drawn
    only where its status line would be shown."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


logging.getLogger(ROOT).addHandler(logging.NullHandler())
