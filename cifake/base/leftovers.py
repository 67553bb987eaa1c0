"""What a process killed with SIGKILL leaves behind (``.NAME.PID.partial``, ``.NAME.PID.staging``), and
how a later run recognises and removes it: by the process id in its name, only once that process is gone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process (PermissionError), or not ours to ask: treat as alive
        return True
    return True


def temp_name(out: Path, kind: str) -> Path:
    """``.OUT.PID.KIND`` beside ``out``: where this process builds ``out`` before renaming it into place."""
    return out.with_name(f".{out.name}.{os.getpid()}.{kind}")


def remove_dead(out: Path, kind: str) -> list[Path]:
    """Remove the ``.OUT.PID.KIND`` files and folders beside ``out`` whose process is gone; return them."""
    removed = []
    for f in out.parent.glob(f".{out.name}.*.{kind}"):
        pid = f.name[len(out.name) + 2 : -len(kind) - 1]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        if f.is_dir() and not f.is_symlink():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
        removed.append(f)
    return removed
