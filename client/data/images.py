"""Image files to the float32 [0, 1] grayscale array the model sees.

Every site's data passes through here, whatever its format, so preprocessing cannot drift
between hospitals: JPEG/PNG exports and DICOM archives end up in the same range and
orientation, and unusable files are refused as DataError instead of crashing a round.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from client.data.dicom import DICOM_SUFFIXES, read_dicom
from client.errors import DataError

_RASTER_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


def load_image(path: str | Path, *, ct_window: tuple[float, float] | None = None) -> np.ndarray:
    """Load a ``.jpg``/``.jpeg``/``.png``/``.dcm``/``.dcm.gz`` file as float32 2-D in [0, 1].

    JPEG and PNG are taken as already display-ready (8-bit / 255, 16-bit / 65535) and
    turned upright by their EXIF orientation; DICOM goes through :func:`read_dicom`, which
    takes ``ct_window``. The whole file is decoded here, so a truncated image fails now
    rather than mid-training.

    Raises:
        DataError: missing, empty, unsupported, truncated or corrupt file.
    """
    path = Path(path)
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return read_dicom(path, ct_window=ct_window)
    kind = _RASTER_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            path, f"unsupported image type {path.suffix.lower()!r} (use .jpg, .png, .dcm)"
        )
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file")
    try:
        # JPEG/PNG content is accepted under either extension: sites do misname exports.
        with Image.open(path, formats=("JPEG", "PNG")) as opened:
            opened.load()
            return _to_unit(ImageOps.exif_transpose(opened))
    except UnidentifiedImageError as exc:
        raise DataError(path, f"not a JPEG or PNG image, despite the {kind} extension") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"image too large to load safely: {exc}") from exc
    except Exception as exc:  # PIL reports damage as OSError, SyntaxError, ValueError, ...
        raise DataError(path, f"truncated or corrupt {kind}: {exc}") from exc


def to_model_input(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox ``image`` to a square (zero padding, centred) and resize to size x size.

    Padding instead of cropping or stretching keeps the whole field of view and the true
    proportions (heart-to-thorax ratio), which reports describe. Resizing is PIL's
    bilinear on float32, which widens its kernel when shrinking, so it antialiases.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    height, width = image.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = image
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0).astype(np.float32)


def save_png(image: np.ndarray, out_path: str | Path) -> None:
    """Write a [0, 1] image as an 8-bit grayscale PNG (values outside are clipped)."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    Image.fromarray(pixels).save(out_path, format="PNG")


def _to_unit(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I"):  # 16-bit PNG: PIL's "L" conversion clips at 255
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
