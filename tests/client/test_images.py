"""load_image, to_model_input, save_png and preview_file."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from client.data.dicom import read_dicom
from client.data.images import load_image, save_png, to_model_input
from client.data.preview import preview_file
from client.errors import DataError


def _ct_small() -> Path:
    return Path(get_testdata_file("CT_small.dcm", download=False))  # ships with pydicom


def _gradient() -> np.ndarray:
    return np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # 48 x 64


def _encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


# --- load_image -------------------------------------------------------------------------

def test_png_loads_exactly_as_8_bit_over_255(tmp_path):
    path = _file(tmp_path, "g.png", _encode(_gradient(), "PNG"))

    image = load_image(path)

    assert image.dtype == np.float32 and image.shape == (48, 64)
    np.testing.assert_allclose(image, _gradient() / 255.0, atol=1e-7)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    # PIL's own "L" conversion of a 16-bit image clips everything above 255 to white.
    pixels = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = _file(tmp_path, "deep.png", _encode(pixels, "PNG"))

    np.testing.assert_allclose(load_image(path)[0], pixels[0] / 65535.0, atol=1e-6)


def test_jpeg_colour_and_misnamed_content_load(tmp_path):
    rgb = np.stack([_gradient()] * 3, axis=-1)
    jpeg_named_png = _file(tmp_path, "photo.png", _encode(rgb, "JPEG", quality=95))

    image = load_image(jpeg_named_png)

    assert image.shape == (48, 64)
    assert np.abs(image - _gradient() / 255.0).max() < 0.05


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": phones and some viewers export this way
    path = _file(tmp_path, "rotated.jpg", _encode(_gradient(), "JPEG", exif=exif))

    image = load_image(path)

    assert image.shape == (64, 48)
    assert image[0].mean() < image[-1].mean()  # the left-to-right ramp now runs top to bottom


def test_dicom_goes_through_read_dicom_in_either_case_of_extension(tmp_path):
    zipped = _file(tmp_path, "CT.DCM.GZ", gzip.compress(_ct_small().read_bytes()))
    expected = read_dicom(_ct_small(), ct_window=(40.0, 400.0))

    np.testing.assert_array_equal(load_image(_ct_small(), ct_window=(40.0, 400.0)), expected)
    np.testing.assert_array_equal(load_image(zipped, ct_window=(40.0, 400.0)), expected)


def _truncated_jpeg(tmp_path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    data = _encode(noise, "JPEG")
    return _file(tmp_path, "cut.jpg", data[: len(data) // 2])


def _truncated_png(tmp_path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    data = _encode(noise, "PNG")
    return _file(tmp_path, "cut.png", data[: len(data) // 2])


@pytest.mark.parametrize(("make", "words"), [
    (lambda tmp_path: tmp_path / "absent.png", ["file not found"]),
    (lambda tmp_path: tmp_path / "absent.dcm", ["file not found"]),
    (lambda tmp_path: _file(tmp_path, "empty.png", b""), ["empty file"]),
    (lambda tmp_path: _file(tmp_path, "empty.dcm", b""), ["empty file"]),
    (lambda tmp_path: _file(tmp_path, "noise.dcm", np.random.default_rng(1).bytes(5000)),
     ["not a DICOM file"]),
    (_truncated_jpeg, ["truncated or corrupt JPEG", "truncated"]),
    (_truncated_png, ["truncated or corrupt PNG"]),
    (lambda tmp_path: _file(tmp_path, "notes.png", b"patient notes, not pixels\n" * 20),
     ["not a JPEG or PNG image"]),
    (lambda tmp_path: _file(tmp_path, "scan.bmp", b"BM" + bytes(100)),
     ["unsupported image type '.bmp'", ".jpg, .png, .dcm"]),
    (lambda tmp_path: _file(tmp_path, "scan", b"data"), ["unsupported image type ''"]),
], ids=["missing-png", "missing-dcm", "empty-png", "empty-dcm", "random-bytes-dcm",
        "truncated-jpeg", "truncated-png", "text-as-png", "bmp", "no-extension"])
def test_bad_files_raise_data_error_with_path_and_reason(tmp_path, make, words):
    path = make(tmp_path)

    with pytest.raises(DataError) as caught:
        load_image(path)

    assert caught.value.path == str(path) and str(path) in str(caught.value)
    for word in words:
        assert word in caught.value.reason


def test_dicom_refusals_come_through_load_image():
    with pytest.raises(DataError, match="no pixel data"):
        load_image(get_testdata_file("test-SR.dcm", download=False))


# --- to_model_input / save_png / preview ------------------------------------------------

def test_model_input_is_square_unit_range_float32():
    image = np.random.default_rng(0).random((300, 200)).astype(np.float32)

    out = to_model_input(image, 64)

    assert out.shape == (64, 64) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_letterbox_keeps_a_wide_bar_wide():
    image = np.zeros((100, 400), dtype=np.float32)
    image[40:60, :] = 1.0  # a full-width bar, 1/5 of the height

    out = to_model_input(image, 64)

    rows, cols = np.nonzero(out > 0.5)
    assert cols.min() == 0 and cols.max() == 63  # still spans the whole width
    assert rows.max() - rows.min() + 1 <= 8  # 20/400 of 64 is ~3 rows, not 1/5 of 64
    assert out[:20].max() == 0.0 and out[-20:].max() == 0.0  # zero letterbox bands


def test_tall_image_is_padded_left_and_right_and_keeps_its_values():
    out = to_model_input(np.ones((400, 200), dtype=np.float32), 40)

    assert out[:, :8].max() == 0.0 and out[:, -8:].max() == 0.0
    np.testing.assert_allclose(out[:, 12:28], 1.0, atol=1e-6)


def test_downsizing_antialiases_fine_detail():
    checkerboard = (np.indices((256, 256)).sum(axis=0) % 2).astype(np.float32)

    out = to_model_input(checkerboard, 32)

    # Point sampling would return a pattern of pure 0 and 1; averaging gives grey.
    np.testing.assert_allclose(out[4:-4, 4:-4], 0.5, atol=0.05)


@pytest.mark.parametrize(("image", "size"), [(np.zeros((4, 4, 3)), 8), (np.zeros((4, 4)), 0)])
def test_model_input_rejects_bad_arguments(image, size):
    with pytest.raises(ValueError):
        to_model_input(image, size)


def test_save_png_round_trips_within_one_grey_level(tmp_path):
    image = np.linspace(-0.2, 1.2, 64 * 32, dtype=np.float32).reshape(32, 64)

    save_png(image, tmp_path / "out.png")

    with Image.open(tmp_path / "out.png") as written:
        assert written.format == "PNG" and written.mode == "L" and written.size == (64, 32)
        np.testing.assert_allclose(np.asarray(written) / 255.0, np.clip(image, 0, 1),
                                   atol=0.5 / 255 + 1e-6)


def test_preview_of_dicom_writes_the_model_view_and_describes_the_file(tmp_path):
    out_png = tmp_path / "ct.png"

    info = preview_file(_ct_small(), out_png, size=96)

    with Image.open(out_png) as written:
        assert written.mode == "L" and written.size == (96, 96)
        expected = to_model_input(load_image(_ct_small()), 96)
        assert np.abs(np.asarray(written) / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    assert info["source_shape"] == (128, 128) and info["output_size"] == (96, 96)
    assert info["modality"] == "CT" and info["photometric_interpretation"] == "MONOCHROME2"
    assert info["transfer_syntax"] == "Explicit VR Little Endian"


def test_preview_of_png_has_no_dicom_fields(tmp_path):
    source = _file(tmp_path, "g.png", _encode(_gradient(), "PNG"))

    info = preview_file(source, tmp_path / "p.png", size=32)

    with Image.open(tmp_path / "p.png") as written:
        assert written.size == (32, 32)
    assert info["source_shape"] == (48, 64) and "modality" not in info
