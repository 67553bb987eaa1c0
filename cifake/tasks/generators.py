"""``cifake generators``: other projects' generators' samples, laid out for training and evaluation.

The input is a zip or a folder holding one folder of image files per generator (``<generator>/``,
at any depth: the first level whose folders hold images directly), and optionally a
``generators.tsv`` (columns ``generator``, ``family``, and any of ``model``, ``trained_on``,
``repository``, ``commit``, ``path``, ``licence``) that says where each came from. Every sample is
decoded, brought to 32x32 RGB (bicubic, counted where a resize was needed) and **encoded as
CIFAKE's files are**: JPEG with the quantisation tables and chroma subsampling read from a CIFAKE
file of ``--data-dir``, as ``cifake fakes`` writes its own (otherwise the file format, PNG against
JPEG, would be the signal a detector learns). The output, parallel to ``cifake fakes``:

    OUT/train/FAKE/<generator>/   a seeded share of each generator's samples (data.extra_fake)
    OUT/val/FAKE/<generator>/     the rest, for evaluation only; identical samples never straddle
    OUT/val/REAL/                 copies of REAL photos of the seeded validation split of --data-dir
    OUT/generators.json           provenance and counts per generator, the settings, the tables' source

``cifake evaluate RUN --data-dir OUT/val`` then reports each generator against the validation
photos; a training run may add ``OUT/train/FAKE`` (or some of its folders) with ``data.extra_fake``,
and ``OUT/val`` is refused as training data (``data.check_extra_folders``). Each generator carries
its benchmark ``group`` (GAN, diffusion, flow, other: ``GROUPS``) so that leaving one family out of
training is one flag of ``scripts/leave_one_out.py``.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np

from ..base import limits
from ..base.errors import UserError
from ..base.files import atomic_write_json
from ..base.progress import say
from ..base.text import printable, shorten
from ..data.images import DATASET_EXTENSIONS
from ..data.listing import GENERATORS_MANIFEST
from .fakes import jpeg_settings, write_jpegs

log = logging.getLogger(__name__)

MANIFEST = GENERATORS_MANIFEST
TABLE = "generators.tsv"
# the benchmark's four families (leave-one-family-out): a generators.tsv family -> its group
GROUPS = {
    "gan": "GAN",
    "diffusion": "diffusion",
    "diffusion/score": "diffusion",
    "score": "diffusion",
    "flow": "flow",
    "flow matching": "flow",
}
OTHER = "other"  # autoregressive, VAE, anything else or unknown
MAX_SAMPLES = 200_000  # samples in one import: about 600 MB of pixels at 32x32


def group_of(family: str) -> str:
    return GROUPS.get(family.strip().lower(), OTHER)


# --- reading the input ----------------------------------------------------------------------------


class _Source:
    """A zip or a folder, read the same way: relative POSIX names -> bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None
        if path.is_dir():
            self.names = sorted(
                p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and not p.is_symlink()
            )
            return
        if not path.is_file():
            raise UserError(
                f"{{source}} {path}: no such file or folder (give generators.zip or a folder)", options=("source",)
            )
        if not zipfile.is_zipfile(path):
            raise UserError(
                f"{{source}} {path} is neither a zip archive nor a folder (was it cut short?)", options=("source",)
            )
        try:
            self.zip = zipfile.ZipFile(path)
            infos = [i for i in self.zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise UserError(f"{{source}} {path} is not a readable zip ({e})", options=("source",)) from None
        limits.check_zip_members(infos, str(path))
        self.infos = {i.filename: i for i in infos}
        self.names = sorted(self.infos)

    def read(self, name: str) -> bytes:
        if self.zip is None:
            return (self.path / name).read_bytes()
        info = self.infos[name]
        out = io.BytesIO()
        with self.zip.open(info) as src:
            limits.copy_bounded(src, out, info.file_size, info.filename)
        return out.getvalue()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _generator_folders(names: list[str]) -> dict[str, list[str]]:
    """{generator: its image files}: the folders that hold image files directly, at the shallowest
    depth where any does (``generators/<name>/0001.png`` in the zip, ``<name>/...`` in a folder)."""
    images = [n for n in names if n.lower().endswith(DATASET_EXTENSIONS) and not Path(n).name.startswith(".")]
    by_folder: dict[str, list[str]] = {}
    for n in images:
        parent = n.rpartition("/")[0]
        if parent:
            by_folder.setdefault(parent, []).append(n)
    if not by_folder:
        return {}
    depth = min(p.count("/") for p in by_folder)
    found = {p.rpartition("/")[2]: files for p, files in by_folder.items() if p.count("/") == depth}
    return dict(sorted(found.items()))


def _provenance(source: _Source) -> dict[str, dict[str, str]]:
    """generators.tsv's rows by generator (the shallowest one in the input), or {}."""
    tables = sorted((n for n in source.names if Path(n).name == TABLE), key=lambda n: n.count("/"))
    if not tables:
        return {}
    text = source.read(tables[0]).decode("utf-8", errors="replace")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t")
    return {r["generator"]: {k: (v or "") for k, v in r.items() if k} for r in rows if r.get("generator")}


def _decode(data: bytes) -> tuple[np.ndarray | None, bool]:
    """(32x32 RGB uint8, whether it was resized); (None, False) for a file that does not decode."""
    from PIL import Image, UnidentifiedImageError

    from ..data.decode import pil_to_array

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size[0] * im.size[1] > limits.max_pixels():
                return None, False
            arr, _ = pil_to_array(im)  # as every reader decodes: first frame, EXIF, RGB, antialiased bicubic
            return arr, arr is not None and im.size != (32, 32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None, False


# --- the split of each generator's samples ---------------------------------------------------------


def split_samples(images: np.ndarray, val_share: float, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, evaluation indices) of one generator's samples: a seeded share of the
    distinct images goes to evaluation, and identical samples (same pixels) stay on one side."""
    from ..data.dedup import pixel_hashes

    _, group = np.unique(pixel_hashes(images), return_inverse=True)
    groups = int(group.max()) + 1 if len(group) else 0
    rng = np.random.default_rng([seed, index])
    n_val = round(groups * val_share)
    if groups >= 2:
        n_val = min(max(n_val, 1), groups - 1)  # both sides get something
    val_groups = np.zeros(groups, bool)
    val_groups[rng.choice(groups, n_val, replace=False)] = True
    on_val = val_groups[group]
    return np.flatnonzero(~on_val), np.flatnonzero(on_val)


# --- the command ----------------------------------------------------------------------------------


def import_generators(
    source: str | Path,
    out: str | Path,
    data_cfg,
    *,
    val_share: float = 0.5,
    real_images: int = 1000,
    seed: int = 0,
    force: bool = False,
) -> dict:
    """Lay out ``source``'s generators under ``out`` (module docstring); return the manifest."""
    from ..base.leftovers import remove_dead, temp_name
    from ..data.listing import load_splits

    if not 0 < val_share < 1:
        raise UserError(
            f"{{val_share}} {val_share:g}: give a share between 0 and 1 (0.5: half for evaluation)",
            options=("val_share",),
        )
    if not 1 <= real_images <= 100_000:
        raise UserError(f"{{real_images}} {real_images:,}: give 1 to 100,000", options=("real_images",))
    out = Path(out)
    src = _Source(Path(source))
    try:
        folders = _generator_folders(src.names)
        if not folders:
            raise UserError(
                f"{{source}} {source} holds no generator folders (<generator>/ folders of "
                f"{', '.join(DATASET_EXTENSIONS)} files)",
                options=("source",),
            )
        total = sum(len(f) for f in folders.values())
        if total > MAX_SAMPLES:
            raise UserError(
                f"{{source}} {source} holds {total:,} samples; at most {MAX_SAMPLES:,} are imported at once",
                options=("source",),
            )
        _refuse_taken(out, force)
        provenance = _provenance(src)
        qtables, subsampling, table_file = jpeg_settings(data_cfg.dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(
                f"{{out}} {out}: cannot be a folder ({e.strerror}); choose another path", options=("out",)
            ) from None
        splits = load_splits(data_cfg)
        real_val = splits["val"].take(np.flatnonzero(splits["val"].labels == 0))
        remove_dead(out / "generators", "staging")
        staging = temp_name(out / "generators", "staging")
        try:
            record = _build(src, folders, provenance, staging, qtables, subsampling, val_share, seed, source)
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(len(real_val), min(real_images, len(real_val)), replace=False))
            (staging / "val" / "REAL").mkdir(parents=True)
            names = []
            for i in pick:
                name = Path(real_val.paths[i]).name
                shutil.copy2(real_val.paths[i], staging / "val" / "REAL" / name)
                names.append(name)
            record.update(
                data_dir=str(data_cfg.dir),
                split_seed=data_cfg.split_seed,
                val_fraction=data_cfg.val_fraction,
                val_share=val_share,
                seed=seed,
                jpeg_tables_from=table_file,
                subsampling=subsampling,
                val_real_files=names,
            )
            for part in ("train", "val"):
                final = out / part
                if final.exists():
                    shutil.rmtree(final)
                (staging / part).rename(final)
            atomic_write_json(out / MANIFEST, record)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        src.close()
    _summary(record, out)
    return record


def _refuse_taken(out: Path, force: bool) -> None:
    taken = [out / part for part in ("train", "val") if (out / part).exists()]
    if taken and not force:
        raise UserError(
            f"{{out}} {out} already holds {taken[0].name}/ (add {{force}} to replace it)", options=("out", "force")
        )
    if out.exists() and not out.is_dir():
        raise UserError(f"{{out}} {out} is a file; give a folder", options=("out",))


def _build(src, folders, provenance, staging, qtables, subsampling, val_share, seed, source) -> dict:
    record = {"source": str(source), "generators": {}, "skipped": {}}
    for index, (name, files) in enumerate(folders.items()):
        say(f"generators: {name} ({len(files):,} files)")
        decoded, resized, bad = [], 0, []
        for f in files:
            arr, was_resized = _decode(src.read(f))
            if arr is None:
                bad.append(f)
                continue
            decoded.append(arr)
            resized += was_resized
        if bad:
            record["skipped"][name] = {"files": len(bad), "example": shorten(printable(bad[0]), 120)}
        if not decoded:
            continue
        images = np.stack(decoded)
        train_idx, val_idx = split_samples(images, val_share, seed, index)
        for part, idx in (("train", train_idx), ("val", val_idx)):
            if len(idx):
                write_jpegs(images[idx], staging / part / "FAKE" / name, name, qtables, subsampling)
        row = provenance.get(name, {})
        family = row.get("family", "") or "unknown"
        record["generators"][name] = {
            "family": family,
            "group": group_of(family),
            "model": row.get("model", ""),
            "trained_on": row.get("trained_on", ""),
            "repository": row.get("repository", ""),
            "licence": row.get("licence", ""),
            "samples": len(images),
            "train": len(train_idx),
            "eval": len(val_idx),
            "resized": resized,
            "skipped": len(bad),
        }
    if not record["generators"]:
        raise UserError(f"{{source}} {source}: not one sample decodes as an image", options=("source",))
    return record


def _summary(record: dict, out: Path) -> None:
    gens = record["generators"]
    groups: dict[str, list[str]] = {}
    for name, g in gens.items():
        groups.setdefault(g["group"], []).append(name)
    log.info(
        f"{len(gens)} generators, {sum(g['samples'] for g in gens.values()):,} samples -> {out}: "
        f"{sum(g['train'] for g in gens.values()):,} for training (train/FAKE), "
        f"{sum(g['eval'] for g in gens.values()):,} for evaluation (val/FAKE) beside "
        f"{len(record['val_real_files']):,} validation photos (val/REAL)"
    )
    for group, names in sorted(groups.items()):
        log.info(f"  {group:<10} {len(names):>2}: {', '.join(names)}")
    resized = sum(g["resized"] for g in gens.values())
    if resized:
        log.warning(f"note: {resized:,} sample(s) were not 32x32 and were resized (bicubic) before encoding")
    for name, s in record["skipped"].items():
        log.warning(f"warning: {name}: skipped {s['files']:,} file(s) that do not decode, e.g. {s['example']}")
    log.info(f"train with:  data.extra_fake=[{out / 'train' / 'FAKE'}]   evaluate with:  --data-dir {out / 'val'}")


def read_manifest(out: str | Path) -> dict | None:
    """The generators.json of an output folder, or None."""
    return limits.read_json_object(Path(out) / MANIFEST, max_bytes=16 << 20)
