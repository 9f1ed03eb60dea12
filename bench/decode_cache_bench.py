"""What a deployed site pays per message to get its training images: decoding vs the decoded cache.

Side by side in one run, on the same synthetic DICOM site: ``decode`` (what every message paid
before ``client.data.decoded_cache``), the first cached call (decode + write) and a cache hit (what a
later message pays). ``--full-size N`` first rewrites every DICOM at N×N pixels (uint16,
uncompressed), closer to a clinical chest X-ray than the generator's 128×128.

    python bench/decode_cache_bench.py [--patients 40] [--full-size 2048] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from client.data.decoded_cache import decode_cached
from client.data.sources import load_records
from shared_model.config import get_preset
from sim.synth import generate


def enlarge(data: Path, size: int) -> None:
    for path in data.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        reps = -(-size // pixels.shape[0])
        big = np.kron(pixels, np.ones((reps, reps), dtype=pixels.dtype))[:size, :size]
        ds.Rows, ds.Columns = big.shape
        ds.PixelData = big.astype(pixels.dtype).tobytes()
        ds.save_as(path)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--full-size", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    data = root / "data"
    generate(data, patients=args.patients, seed=0, dicom=True)
    if args.full_size:
        enlarge(data, args.full_size)
    size = get_preset(args.preset).image_size

    def site(cache_dir):
        records, report = load_records(data)
        return decode_cached([r for r in records if r.split == "train"], size, report, cache_dir=cache_dir)

    plain, cold, warm = [], [], []
    for r in range(args.repeats):
        plain.append(timed(lambda: site(None)))
        cache_dir = root / f"decoded-{r}"
        cold.append(timed(lambda: site(cache_dir)))
        warm.append(timed(lambda: site(cache_dir)))
    images = int(site(root / "decoded-0").images.shape[0])
    med = {k: statistics.median(v) for k, v in (("decode", plain), ("first_cached", cold), ("cache_hit", warm))}
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "images": images, "pixels": args.full_size or 128, "model_input": size, "repeats": args.repeats,
           "seconds": med, "hit_over_decode": med["cache_hit"] / med["decode"],
           "first_over_decode": med["first_cached"] / med["decode"]}
    print(json.dumps(out, indent=2))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
