"""Write the exact picture the model will see for one file, for a site to inspect.

A wrong window, a missed MONOCHROME1 inversion or a bad crop looks fine in numbers but
obvious in a picture, so sites check their data this way before joining a federation.
"""
from __future__ import annotations

from pathlib import Path

from client.data.dicom import DICOM_SUFFIXES, read_header
from client.data.images import load_image, save_png, to_model_input


def preview_file(
    path: str | Path,
    out_png: str | Path,
    *,
    size: int,
    ct_window: tuple[float, float] | None = None,
) -> dict[str, object]:
    """Load ``path``, convert it as for training and write it to ``out_png``.

    Returns the source shape and output size, plus for DICOM the modality, photometric
    interpretation and transfer syntax (``None`` where the file does not say), read from
    the header alone.

    Raises:
        DataError: the file cannot be loaded (see :func:`client.data.images.load_image`).
    """
    image = load_image(path, ct_window=ct_window)
    save_png(to_model_input(image, size), out_png)
    info: dict[str, object] = {
        "source": str(path),
        "source_shape": image.shape,
        "output": str(out_png),
        "output_size": (size, size),
    }
    if Path(path).name.lower().endswith(DICOM_SUFFIXES):
        header = read_header(path)
        syntax = header.file_meta.get("TransferSyntaxUID")
        info["modality"] = header.get("Modality")
        info["photometric_interpretation"] = header.get("PhotometricInterpretation")
        info["transfer_syntax"] = syntax.name if syntax else None
    return info
