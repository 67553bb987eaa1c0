"""Signal handlers swapped for a block of code and restored after it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def handlers(mapping: dict[signal.Signals, Callable | int]) -> Iterator[None]:
    """Install ``mapping`` (signal -> handler) for the block, then restore the caller's handlers.

    Python lets only the main thread set handlers; elsewhere this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in mapping}
    for sig, handler in mapping.items():
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
