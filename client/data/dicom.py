"""DICOM files to display-ready grayscale arrays, with every failure as a DataError.

Hospitals export the same anatomy with different encodings (MONOCHROME1 or 2, rescaled
CT, compressed transfer syntaxes, multi-frame objects). This module undoes all of that so
each site hands the model the picture a radiologist would see: dense tissue bright, in
[0, 1].
"""
from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder, pixel_array
from pydicom.uid import UID

from client.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dcm.gz")
"""File name endings read as DICOM (compared lower-cased)."""

LUNG_WINDOW: tuple[float, float] = (-600.0, 1500.0)
"""Default CT (center, width) in HU: chest reports describe lungs, so sites agree on it."""

# pip packages whose pydicom plugins decode each compressed transfer syntax (what m3fed
# installs). Syntaxes missing here either need no plugin or have no pydicom decoder.
_PLUGIN_PACKAGES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Baseline 8-bit
    "1.2.840.10008.1.2.4.51": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Extended 12-bit
    "1.2.840.10008.1.2.4.57": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Lossless P14
    "1.2.840.10008.1.2.4.70": ("pylibjpeg", "pylibjpeg-libjpeg"),  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": ("pyjpegls",),  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": ("pyjpegls",),  # JPEG-LS Near Lossless
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pylibjpeg-openjpeg"),  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pylibjpeg-openjpeg"),  # JPEG 2000
    "1.2.840.10008.1.2.4.201": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": ("pylibjpeg", "pylibjpeg-openjpeg"),  # HTJ2K
}
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, the weights PIL's "L" uses too


def read_dicom(path: str | Path, *, ct_window: tuple[float, float] | None = None) -> np.ndarray:
    """Load one DICOM image (``.dcm`` or gzip ``.dcm.gz``) as float32 2-D in [0, 1].

    Multi-frame objects give their middle frame (index ``n // 2``): for a volume or a cine
    loop it is the frame most likely to show the region the study was taken for.

    Display pipeline, in DICOM order: Modality LUT (rescale to HU for CT), then for CT the
    ``ct_window`` (center, width) in HU, default :data:`LUNG_WINDOW`, so every site shows
    lungs the same way whatever window its scanner stored; for other modalities the file's
    own VOI LUT or Window Center/Width, scaled by that VOI's output range; with neither, a
    robust min-max over the 0.5-99.5 percentiles so a few saturated pixels (markers,
    collimator edges) do not flatten the image. MONOCHROME1 is inverted last; colour
    images are converted to luma.

    Raises:
        DataError: unreadable, truncated or non-DICOM file, no pixel data, an unsupported
            photometric interpretation, or a transfer syntax no installed plugin decodes
            (the reason names the syntax and the pip packages that would).
        ValueError: ``ct_window`` width is not positive (a configuration bug, not data).
    """
    center, width = ct_window or LUNG_WINDOW
    if width <= 0:
        raise ValueError(f"ct_window width must be positive, got {width}")
    path = Path(path)
    ds = _read_dataset(path, stop_before_pixels=False)
    if "PixelData" not in ds:
        raise DataError(path, "no pixel data (not an image object, or the file is truncated)")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if not photometric:
        raise DataError(path, "no Photometric Interpretation, so the pixels cannot be displayed")
    if not photometric.startswith("MONOCHROME") and ds.get("SamplesPerPixel") != 3:
        raise DataError(path, f"unsupported photometric interpretation {photometric!r}")
    frame = _decode_middle_frame(ds, path)
    try:
        image = _to_display(frame, ds, center, width)
    except Exception as exc:  # malformed LUT/window attributes surface as assorted errors
        raise DataError(path, f"cannot apply the DICOM display transforms: {exc}") from exc
    return image.astype(np.float32)


def read_header(path: str | Path) -> Dataset:
    """Read the attributes only (pixels skipped), so describing a file stays cheap.

    Raises:
        DataError: as :func:`read_dicom`, for anything wrong before the pixel data.
    """
    return _read_dataset(Path(path), stop_before_pixels=True)


def _read_dataset(path: Path, *, stop_before_pixels: bool) -> Dataset:
    with _open(path) as fp:
        try:
            return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError as exc:
            raise DataError(path, "not a DICOM file (no 'DICM' marker after the preamble)") from exc
        except Exception as exc:  # pydicom reports damaged headers with many exception types
            raise DataError(path, f"unreadable DICOM header: {exc}") from exc


def _open(path: Path) -> BinaryIO:
    try:
        if path.stat().st_size == 0:
            raise DataError(path, "empty file")
        if path.name.lower().endswith(".gz"):
            return io.BytesIO(gzip.decompress(path.read_bytes()))
        return path.open("rb")
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(path, f"truncated or corrupt gzip: {exc}") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc


def _decode_middle_frame(ds: Dataset, path: Path) -> np.ndarray:
    syntax = UID(ds.file_meta.get("TransferSyntaxUID", ""))
    if not syntax:
        raise DataError(path, "no Transfer Syntax UID in the file meta header")
    label = f"{syntax.name} ({syntax})" if syntax.name != syntax else str(syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(path, f"pydicom has no pixel decoder for transfer syntax {label}") from None
    if not decoder.is_available:
        if syntax in _PLUGIN_PACKAGES:
            hint = "pip install " + " ".join(_PLUGIN_PACKAGES[syntax])
        else:
            hint = "; ".join(decoder.missing_dependencies)
        raise DataError(path, f"no installed plugin decodes transfer syntax {label}; {hint}")
    frames = int(ds.get("NumberOfFrames") or 1)
    try:
        return pixel_array(ds, index=frames // 2)
    except Exception as exc:  # each decoder plugin fails in its own way on damaged data
        raise DataError(
            path, f"cannot decode {label} pixel data, truncated or corrupt: {exc}"
        ) from exc


def _to_display(frame: np.ndarray, ds: Dataset, center: float, width: float) -> np.ndarray:
    if frame.ndim == 3:  # pydicom has already turned YBR into RGB: display values as is
        return np.clip(frame @ _LUMA / (2 ** int(ds.BitsStored) - 1), 0.0, 1.0)
    values = apply_modality_lut(frame, ds)
    if ds.get("Modality") == "CT":
        shown = np.clip((values - (center - width / 2)) / width, 0.0, 1.0)
    elif _has_voi(ds):
        shown = _apply_voi(values, ds)
    else:
        shown = _percentile_scale(values)
    return 1.0 - shown if ds.PhotometricInterpretation == "MONOCHROME1" else shown


def _has_voi(ds: Dataset) -> bool:
    """Mirror apply_voi_lut's own test, so half a VOI module falls back to percentiles."""
    luts = ds.get("VOILUTSequence")
    if luts and None not in (luts[0].get("LUTDescriptor"), luts[0].get("LUTData")):
        return True
    return None not in (ds.get("WindowCenter"), ds.get("WindowWidth"))


def _apply_voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Scale by the VOI's output range, not the image's: a window the image does not
    fill must not be stretched."""
    shown = apply_voi_lut(values, ds)
    if np.issubdtype(shown.dtype, np.integer):
        # A VOI LUT: its entries bound the output (often fewer bits than the descriptor says).
        n_entries, first_mapped = ds.VOILUTSequence[0].LUTDescriptor[:2]
        bounds = apply_voi_lut(first_mapped + np.arange(n_entries or 2**16), ds)
    else:
        # A window: pydicom sends everything outside it to its output range's two ends.
        bounds = apply_voi_lut(np.array([-np.inf, np.inf]), ds)
    low, high = float(bounds.min()), float(bounds.max())
    if high <= low:
        raise ValueError("the VOI LUT maps every value to one grey level")
    return np.clip((shown - low) / (high - low), 0.0, 1.0)


def _percentile_scale(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        return np.zeros(values.shape)
    return np.clip((values - low) / (high - low), 0.0, 1.0)
