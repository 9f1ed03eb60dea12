"""What a site sends back for its update: fp32 weights, or a compressed change (``update-dtype``).

``fp32``: the trained tensors themselves (as before compression existed). ``fp16`` and ``int8``
send the *change* from the global tensors the site received, which the server holds too: a
change is small next to the weights, so its relative rounding error is what is lost, not the
weights'. ``int8`` is symmetric per-tensor quantisation: q = round(Δ / s), s = max|Δ| / 127, one
float32 scale per tensor in a second ArrayRecord (``scales``). The server decodes before it screens
or aggregates anything (``server.strategy``), so screening, robust aggregation and site-level DP see
fp32 weights whatever was sent. SecAgg+ quantises with its own ranges: no codec under it.
Importable without torch (numpy only).
"""
from __future__ import annotations

import numpy as np

SCALES = "scales"  # the int8 reply's per-tensor scales (an ArrayRecord beside "arrays")
_WIRE = {"fp16": np.float16, "int8": np.int8}


def encode(trained: dict[str, np.ndarray], start: dict[str, np.ndarray], dtype: str
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(arrays, scales) to send for ``trained`` given the received ``start`` tensors."""
    if dtype == "fp32":
        return trained, {}
    if dtype not in _WIRE:
        raise ValueError(f"update dtype must be fp32, fp16 or int8, got {dtype!r}")
    arrays, scales = {}, {}
    for key, value in trained.items():
        # np.asarray throughout: arithmetic on a 0-d array (CLIP's temperature) gives a numpy scalar.
        delta = np.asarray(value.astype(np.float32) - start[key].astype(np.float32))
        if dtype == "fp16":
            arrays[key] = np.asarray(delta.astype(np.float16))
            continue
        peak = float(np.abs(delta).max()) if delta.size else 0.0
        scale = np.float32(peak / 127.0)
        arrays[key] = np.asarray(np.zeros(delta.shape, np.int8) if scale == 0 else
                                 np.clip(np.rint(delta / scale), -127, 127).astype(np.int8))
        scales[key] = np.array([scale], dtype=np.float32)
    return arrays, scales


def decode(arrays: dict[str, np.ndarray], scales: dict[str, np.ndarray], start: dict[str, np.ndarray], dtype: str
           ) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(fp32 weights, None), or (None, what is wrong with the reply) for one site's encoded update."""
    if dtype == "fp32":
        return arrays, None
    wire = np.dtype(_WIRE[dtype])
    out = {}
    for key, value in arrays.items():
        if key not in start:
            return None, f"unexpected tensor '{key}'"
        if value.dtype != wire:
            return None, f"wrong dtype {value.dtype} of '{key}' (this run's updates are {dtype})"
        if value.shape != start[key].shape:
            return None, f"wrong shape {value.shape} of '{key}' (the model's: {start[key].shape})"
        delta = value.astype(np.float32)
        if dtype == "int8":
            scale = scales.get(key)
            if scale is None or scale.shape != (1,) or scale.dtype != np.float32 \
                    or not np.isfinite(scale).all() or scale[0] < 0:
                return None, f"int8 update: no valid scale for '{key}'"
            if value.size and value.min() < -127:  # encode never writes -128: the range is symmetric
                return None, f"int8 update: value -128 in '{key}' (the range is -127..127)"
            delta = delta * scale[0]
        out[key] = np.asarray((start[key].astype(np.float32) + delta).astype(start[key].dtype))
    extra = sorted(set(scales) - set(arrays))
    if extra:
        return None, f"{dtype} update: a scale for '{extra[0]}', which the reply does not carry"
    return out, None
