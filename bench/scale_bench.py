"""Real scale (issue H), three parts, each side by side in one run:

(a) ``decode``: decoding into the decoded-image store (``client.data.image_store``), images/s and
    peak RSS (the process and its decoding workers) at 1 and N workers, on full-size synthetic
    images (2048-px uint16 DICOM and 2048-px JPEG). ``--distinct`` files per format are written and
    hard-linked under ``--images`` names in all: every name is a store entry of its own and is
    decoded, while the file reads come from the page cache (a real archive adds its disk's read time).
(b) ``sites``: peak RSS of a whole ``m3fed sim`` (every process of it: Flower, Ray, the actors,
    the server) with 10, 100 and 1,000 virtual sites, one round, lora:8 adapters, a few records per
    site (goal: 1,000 / 10 ≤ 1.5).
(c) ``gpu`` (a GPU machine only): the ``paper`` preset, 4 virtual sites at 0.25 GPU each, images/s
    per site against a plain PyTorch loop on the same GPU (goal ≥ 0.9), and the whole job's wall time.

    python bench/scale_bench.py --parts decode,sites [--images 5000] [--out DIR]   # prints and writes JSON
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pydicom
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


class PeakRSS:
    """The largest total RSS, and PSS, of a process and everything it started, sampled every 0.2 s.
    RSS counts a page shared by N processes N times (forked workers, a file mapped by every site);
    PSS counts 1/N of it in each: their sum is the memory the job really holds."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.peak_pss, self._stop = pid, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
                # A session too: Ray's daemons leave the process tree but stay in the session.
                sid = os.getsid(self.pid)
                tree += [p for p in psutil.process_iter() if p not in tree and _sid(p.pid) == sid]
                self.peak = max(self.peak, sum(_rss(p) for p in tree))
                self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in tree))
            except (psutil.Error, OSError):
                pass
            self._stop.wait(0.2)


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return 0


def full_size_images(folder: Path, *, distinct: int, names: int, pixels: int) -> list[str]:
    """``distinct`` 2048-px DICOM and as many JPEG files, hard-linked to ``names`` paths in all."""
    from sim.synth import generate

    source = folder / "synth"
    generate(source, patients=max(3, distinct // 2), seed=0, dicom=True)
    dicoms = sorted(source.rglob("*.dcm"))[:distinct]
    originals = []
    for i, path in enumerate(dicoms):
        ds = pydicom.dcmread(path)
        small = ds.pixel_array
        big = np.asarray(Image.fromarray(small.astype(np.float32)).resize((pixels, pixels))).astype(small.dtype)
        ds.Rows, ds.Columns, ds.PixelData = pixels, pixels, big.tobytes()
        ds.save_as(folder / f"full-{i}.dcm")
        jpeg = (big.astype(np.float32) / max(1, big.max()) * 255).astype(np.uint8)
        Image.fromarray(jpeg).save(folder / f"full-{i}.jpg", quality=90)
        originals += [folder / f"full-{i}.dcm", folder / f"full-{i}.jpg"]
    paths = []
    for n in range(names):
        original = originals[n % len(originals)]
        link = folder / "names" / f"{n:06d}{''.join(original.suffixes)}"
        link.parent.mkdir(exist_ok=True)
        if not link.exists():
            os.link(original, link)
        paths.append(str(link))
    shutil.rmtree(source)
    return paths


def decode_part(out: Path, *, images: int, distinct: int, pixels: int, workers: list[int], size: int) -> dict:
    folder = out / "full-size"
    paths = full_size_images(folder, distinct=distinct, names=images, pixels=pixels)
    (out / "paths.json").write_text(json.dumps(paths))
    result = {"images": len(paths), "distinct_files": 2 * distinct, "pixels": pixels, "model_input": size, "runs": {}}
    for n in workers:
        store = out / f"store-{n}"
        shutil.rmtree(store, ignore_errors=True)
        code = ("import json, sys; from client.data.image_store import ImageStore; "
                f"paths = json.load(open({str(out / 'paths.json')!r})); "
                f"s = ImageStore({str(store)!r}, {size}); s.ensure(paths, workers={n}); print(s.decoded)")
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        with PeakRSS(proc.pid) as rss:
            decoded = int(proc.communicate()[0].strip().splitlines()[-1])
        seconds = time.perf_counter() - started
        result["runs"][n] = {"decoded": decoded, "seconds": seconds, "images_per_s": decoded / seconds,
                             "peak_rss_mb": rss.peak / 2**20, "peak_pss_mb": rss.peak_pss / 2**20}
        shutil.rmtree(store, ignore_errors=True)
    one, many = result["runs"][workers[0]], result["runs"][workers[-1]]
    result["speedup"] = many["images_per_s"] / one["images_per_s"]
    shutil.rmtree(folder, ignore_errors=True)
    return result


def sites_part(out: Path, *, counts: list[int], records: int, patients: int) -> dict:
    from sim.synth import generate

    data = out / "sites-data"
    if not (data / "m3fed-synth.json").is_file():
        generate(data, patients=patients, seed=0)
    result = {}
    for k in counts:
        run = out / f"sites-{k}"
        shutil.rmtree(run, ignore_errors=True)
        command = [sys.executable, "-m", "sim.m3fed_command", "sim", "--data", str(data), "--out", str(run),
                   "--sites", str(k), "--rounds", "1", "--schedule", "contrastive", "--partition", "iid",
                   "--text-only-sites", "0", "--local-epochs", "1", "--adapter", "lora:8", "--no-compare",
                   "--max-records-per-site", str(records), "--cpus-per-site", "1",
                   "--image-cache", str(out / "sites-store")]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        with PeakRSS(proc.pid) as rss:
            code = proc.wait()
        result[k] = {"exit": code, "seconds": time.perf_counter() - started, "peak_rss_mb": rss.peak / 2**20,
                     "peak_pss_mb": rss.peak_pss / 2**20}
    first, last = result[counts[0]], result[counts[-1]]
    result["ratio"] = {f"rss {counts[-1]}/{counts[0]}": last["peak_rss_mb"] / first["peak_rss_mb"],
                       f"pss {counts[-1]}/{counts[0]}": last["peak_pss_mb"] / first["peak_pss_mb"]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="decode,sites", help="decode, sites, gpu")
    parser.add_argument("--out", default="runs/scale-bench")
    parser.add_argument("--images", type=int, default=5000, help="(a) image names decoded, half DICOM, half JPEG")
    parser.add_argument("--distinct", type=int, default=100, help="(a) distinct files per format")
    parser.add_argument("--pixels", type=int, default=2048, help="(a) the full-size images' side")
    parser.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="(a) worker counts side by side")
    parser.add_argument("--size", type=int, default=224, help="(a) model input side (paper: 224, tiny: 64)")
    parser.add_argument("--sites", default="10,100,1000", help="(b) virtual site counts side by side")
    parser.add_argument("--records", type=int, default=2, help="(b) training records per site")
    parser.add_argument("--patients", type=int, default=1600, help="(b) patients of its dataset")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    result: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "memory_gb": psutil.virtual_memory().total / 2**30}, "settings": vars(args)}
    if "decode" in parts:
        result["decode"] = decode_part(out, images=args.images, distinct=args.distinct, pixels=args.pixels,
                                       workers=[int(w) for w in args.workers.split(",")], size=args.size)
    if "sites" in parts:
        result["sites"] = sites_part(out, counts=[int(k) for k in args.sites.split(",")], records=args.records,
                                     patients=args.patients)
    if "gpu" in parts:
        from bench.scale_gpu import gpu_part

        result["gpu"] = gpu_part(out)
    (out / "scale_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
