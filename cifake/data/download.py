"""``cifake download``: verify a dataset folder, import a zip, or fetch the zip from Kaggle; idempotent.

The pieces: ``layout`` (verification, the completion marker, what may be replaced), ``archive``
(safe extraction), ``kaggle_client`` (the official client).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..base.errors import UserError
from ..base.text import printable
from .archive import import_archive
from .kaggle_client import kaggle_download
from .layout import check_target, clean_stale, is_complete, refuse_file, verify

log = logging.getLogger(__name__)


def run(data_dir: str, archive: str | None = None, force: bool = False, verify_only: bool = False) -> int:
    """``cifake download``: verify, import or download, idempotently; never deletes a folder it did not make."""
    root = Path(data_dir)
    refuse_file(root)  # --verify too
    if verify_only:
        if not root.is_dir():
            raise UserError(f"{root} does not exist: fetch it with cifake download --data-dir {root}")
        errors, notes = verify(root)
        for line in notes:
            log.info(f"ok    {line}")
        for line in errors:
            log.info(f"ERROR {printable(line)}")
        if errors:
            raise UserError(
                f"{root}: {len(errors)} problem(s) found (listed above); re-import with {{force}}", options=("force",)
            )
        log.info(f"{root}: verified")
        return 0
    clean_stale(root)
    if is_complete(root) and not force:
        log.info(
            f"{root} is already complete (verified when it was imported); nothing to do. Use --force to replace it."
        )
        return 0
    check_target(root, force)  # a folder that is not a dataset is refused, with or without --force
    if root.exists() and any(root.iterdir()) and not force:
        raise UserError(
            f"{root} holds an incomplete dataset not made by cifake download: check it with {{verify}}, "
            "or replace it with {force}",
            options=("verify", "force"),
        )
    if archive:
        return import_archive(archive, root, force=True)
    return kaggle_download(root, force=True)
