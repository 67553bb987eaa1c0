"""Pack the training split for a GPU machine that has no TensorFlow and no network (``gpu_check.sh``).

Every CIFAKE JPEG shares one 623-byte header (quantisation and Huffman tables) and differs only in
its entropy-coded scan, so the 100,000 training files (92 MB) travel as one header and 30 MB of
scans that rebuild each file byte for byte. The seeded split is computed here, by cifake's own rules
(byte-identical files on one side), and travels as indices, so the GPU trains and validates on the
same images as ``cifake train`` would. The pack is data: it stays out of the repository (``.gpu/``).

    python scripts/gpu_pack.py --data-dir data/cifake --out .gpu/pack
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def split_jpeg(data: bytes) -> tuple[bytes, bytes]:
    """(header up to and including the start-of-scan segment, the scan that follows)."""
    sos = data.find(b"\xff\xda")
    if sos < 0:
        raise ValueError("no start-of-scan marker")
    end = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    return data[:end], data[end:]


def main() -> int:
    from cifake.config import DataConfig
    from cifake.data.dedup import file_hashes
    from cifake.data.listing import list_split, stratified_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--out", default=".gpu/pack")
    args = ap.parse_args()
    cfg = DataConfig(dir=args.data_dir)
    paths, labels = list_split(cfg.dir, "train")
    hashes = file_hashes(paths)
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.split_seed, hashes)
    header, scans, offsets = None, [], [0]
    for p in paths:
        head, scan = split_jpeg(Path(p).read_bytes())
        if header is None:
            header = head
        if head != header:
            raise SystemExit(f"{p}: its JPEG header differs from the first file's; this pack needs one header")
        scans.append(scan)
        offsets.append(offsets[-1] + len(scan))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "header.bin").write_bytes(header)
    (out / "scans.bin").write_bytes(b"".join(scans))
    np.savez(out / "index.npz", offsets=np.asarray(offsets, np.int64), labels=labels, train=train_idx, val=val_idx)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"{len(paths):,} files -> {out} ({size:.1f} MiB): {len(train_idx):,} train / {len(val_idx):,} val")
    return 0


if __name__ == "__main__":
    sys.exit(main())
