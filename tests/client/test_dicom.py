"""read_dicom: real radiographs and CT from pydicom(-data), synthetic encodings, bad files."""
from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from client.data.dicom import read_dicom, read_header
from client.errors import DataError

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)  # offline: never fetch a missing file
    if path is None:
        pytest.skip(f"{name} is not installed (it ships in pydicom-data)")
    return path


def _write(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
           bits_stored: int = 12, **attributes: object) -> Path:
    ds = Dataset()
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits_stored)
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def _picture() -> np.ndarray:
    """12-bit ramp with a bright disk: asymmetric, so flips and inversions show."""
    yy, xx = np.mgrid[0:64, 0:80]
    ramp = xx * 2000 // 80
    disk = ((yy - 20) ** 2 + (xx - 50) ** 2 < 100) * 2000
    return (ramp + disk + 50).astype(np.uint16)


def _mediastinum_minus_lungs(image: np.ndarray) -> float:
    """Mean of the central vertical strip minus mean of both lung fields, at mid height."""
    height, width = image.shape
    rows = slice(int(0.35 * height), int(0.55 * height))
    centre = image[rows, int(0.46 * width):int(0.54 * width)].mean()
    left = image[rows, int(0.18 * width):int(0.32 * width)].mean()
    right = image[rows, int(0.68 * width):int(0.82 * width)].mean()
    return float(centre - (left + right) / 2)


# --- the real chest radiograph (MONOCHROME1) -------------------------------------------

def test_chest_radiograph_displays_mediastinum_brighter_than_lungs():
    image = read_dicom(_testdata("RG1_UNCR.dcm"))

    assert image.dtype == np.float32 and image.shape == (1955, 1841)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert _mediastinum_minus_lungs(image[::4, ::4]) > 0.15


def test_chest_radiograph_stored_values_are_the_other_way_round():
    # Without the MONOCHROME1 inversion the same comparison flips: dense tissue is stored low.
    ds = pydicom.dcmread(_testdata("RG1_UNCR.dcm"))

    assert ds.PhotometricInterpretation == "MONOCHROME1"
    stored = ds.pixel_array[::4, ::4].astype(np.float64)
    assert _mediastinum_minus_lungs(stored / stored.max()) < -0.15


def test_jpeg2000_lossless_twin_equals_uncompressed():
    uncompressed = read_dicom(_testdata("RG1_UNCR.dcm"))
    jpeg2000 = read_dicom(_testdata("RG1_J2KR.dcm"))

    np.testing.assert_allclose(jpeg2000, uncompressed, atol=1e-6)


@pytest.mark.parametrize(("name", "syntax_name", "uid", "package"), [
    ("MR_small_jp2klossless.dcm", "JPEG 2000 Image Compression (Lossless Only)",
     "1.2.840.10008.1.2.4.90", "pylibjpeg-openjpeg"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression",
     "1.2.840.10008.1.2.4.80", "pyjpegls"),
    ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)",
     "1.2.840.10008.1.2.4.51", "pylibjpeg-libjpeg"),
])
def test_missing_plugin_refusal_names_syntax_and_packages(monkeypatch, name, syntax_name, uid,
                                                          package):
    # What pydicom looks like when no plugin package for this syntax is installed.
    monkeypatch.setattr(get_decoder(uid), "_available", {})
    path = _testdata(name)

    with pytest.raises(DataError) as caught:
        read_dicom(path)

    assert caught.value.path == path
    assert syntax_name in caught.value.reason and uid in caught.value.reason
    assert "pip install" in caught.value.reason and package in caught.value.reason


@pytest.mark.parametrize("name", [
    "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
])
def test_every_installed_lossless_syntax_decodes_to_the_same_image(name):
    reference = read_dicom(_testdata("MR_small.dcm"))

    np.testing.assert_allclose(read_dicom(_testdata(name)), reference, atol=1e-6)


@pytest.mark.parametrize("name", [
    "JPGExtended.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "image_dfl.dcm",
    "JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm",
])
def test_lossy_and_process14_syntaxes_decode(name):
    image = read_dicom(_testdata(name))

    assert image.ndim == 2 and image.dtype == np.float32
    assert image.std() > 0.05  # a real picture, not a blank decode


# --- CT: HU rescale, then the site-wide window ------------------------------------------

def _ct_hounsfield() -> np.ndarray:
    ds = pydicom.dcmread(_testdata("CT_small.dcm"))
    return apply_modality_lut(ds.pixel_array, ds)


def test_ct_rescales_to_hounsfield_then_windows():
    hu = _ct_hounsfield()

    image = read_dicom(_testdata("CT_small.dcm"), ct_window=(0.0, 4000.0))

    np.testing.assert_allclose(image, (hu + 2000.0) / 4000.0, atol=1e-6)


def test_ct_wide_window_stays_inside_and_air_is_dark():
    hu = _ct_hounsfield()
    air, tissue = hu < -500, hu > 0
    assert air.sum() > 100 and tissue.sum() > 100

    image = read_dicom(_testdata("CT_small.dcm"), ct_window=(0.0, 100_000.0))

    assert 0.0 < image.min() and image.max() < 1.0
    assert image[air].max() < image[tissue].min()


def test_ct_window_choice_changes_the_image():
    path = _testdata("CT_small.dcm")
    air = _ct_hounsfield() < -500

    lung = read_dicom(path)  # default (-600, 1500)
    mediastinal = read_dicom(path, ct_window=(40.0, 400.0))

    assert not np.allclose(lung, mediastinal, atol=0.05)
    assert lung[air].min() > 0.1 and mediastinal[air].max() == 0.0


def test_ct_window_needs_positive_width():
    with pytest.raises(ValueError, match="width"):
        read_dicom(_testdata("CT_small.dcm"), ct_window=(40.0, 0.0))


# --- synthetic encodings ----------------------------------------------------------------

def test_monochrome1_and_monochrome2_of_one_picture_display_the_same(tmp_path):
    picture = _picture()
    mono2 = _write(tmp_path / "m2.dcm", picture)
    mono1 = _write(tmp_path / "m1.dcm", (4095 - picture).astype(np.uint16), "MONOCHROME1")

    shown2, shown1 = read_dicom(mono2), read_dicom(mono1)

    np.testing.assert_allclose(shown1, shown2, atol=1e-5)
    assert shown2[20, 50] > 0.9 and shown2[60, 2] < 0.05  # disk bright, dark corner dark


def test_window_center_width_is_applied_by_the_dicom_formula(tmp_path):
    picture = _picture()
    path = _write(tmp_path / "w.dcm", picture, WindowCenter=1000, WindowWidth=501)

    image = read_dicom(path)

    expected = np.clip((picture - 999.5) / 500.0 + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_window_wider_than_the_picture_is_not_stretched(tmp_path):
    picture = np.tile(np.arange(1000, 2000, 10, dtype=np.uint16), (10, 1))
    path = _write(tmp_path / "wide.dcm", picture, WindowCenter=1500, WindowWidth=4001)

    image = read_dicom(path)

    assert 0.35 < image.min() < image.max() < 0.65


def test_half_a_window_falls_back_to_percentile_scaling(tmp_path):
    picture = _picture()
    path = _write(tmp_path / "half.dcm", picture, WindowCenter=1000)

    image = read_dicom(path)

    low, high = np.percentile(picture, [0.5, 99.5])
    np.testing.assert_allclose(image, np.clip((picture - low) / (high - low), 0, 1), atol=1e-6)


def test_voi_lut_sequence_is_applied_and_scaled_by_its_entries(tmp_path):
    picture = _picture()
    lut = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype("<u2")
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]  # claims 16 bits, holds 12: common in CR exports
    item.add_new("LUTData", "OW", lut.tobytes())
    path = _write(tmp_path / "lut.dcm", picture, VOILUTSequence=[item])

    image = read_dicom(path)

    np.testing.assert_allclose(image, lut[picture] / 4095.0, atol=1e-6)


@pytest.mark.parametrize("n_frames", [3, 4])
def test_multi_frame_returns_the_middle_frame(tmp_path, n_frames):
    frames = np.zeros((n_frames, 16, 20), dtype=np.uint16)
    for index in range(n_frames):
        frames[index, :, 2 + 4 * index] = 4000  # a bright column that moves with the frame
    path = _write(tmp_path / "mf.dcm", frames)

    image = read_dicom(path)

    assert image.shape == (16, 20)
    assert int(image.mean(axis=0).argmax()) == 2 + 4 * (n_frames // 2)


def test_rle_compressed_decodes_to_the_uncompressed_image(tmp_path):
    plain = _write(tmp_path / "plain.dcm", _picture())
    ds = pydicom.dcmread(plain)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)

    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(read_dicom(tmp_path / "rle.dcm"), read_dicom(plain))


def test_gzipped_dicom_loads(tmp_path):
    plain = _write(tmp_path / "plain.dcm", _picture())
    zipped = tmp_path / "plain.dcm.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))

    np.testing.assert_array_equal(read_dicom(zipped), read_dicom(plain))
    assert read_header(zipped).Rows == 64


def test_rgb_becomes_luma(tmp_path):
    rgb = np.zeros((4, 3, 3), dtype=np.uint8)
    rgb[:, 0, 0], rgb[:, 1, 1], rgb[:, 2, 2] = 255, 255, 255
    path = _write(tmp_path / "rgb.dcm", rgb, "RGB", bits_stored=8)

    np.testing.assert_allclose(read_dicom(path)[0], [0.299, 0.587, 0.114], atol=1e-6)


def test_ybr_is_converted_before_luma():
    rgb = read_dicom(_testdata("SC_rgb_rle.dcm"))

    np.testing.assert_allclose(read_dicom(_testdata("SC_ybr_full_422_uncompressed.dcm")), rgb,
                               atol=0.01)


# --- refusals ---------------------------------------------------------------------------

def _truncated(tmp_path: Path) -> Path:
    data = _write(tmp_path / "whole.dcm", _picture()).read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) - 3000])
    return path


def _no_pixels(tmp_path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, generate_uid()
    ds.PatientID = "anon"
    ds.save_as(tmp_path / "header_only.dcm", enforce_file_format=True)
    return tmp_path / "header_only.dcm"


def _write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name
    return make


@pytest.mark.parametrize(("make", "words"), [
    (lambda tmp_path: tmp_path / "absent.dcm", ["not found"]),
    (_write_bytes("empty.dcm", b""), ["empty"]),
    (_write_bytes("noise.dcm", np.random.default_rng(0).bytes(4000)), ["not a DICOM"]),
    (_write_bytes("noise.dcm.gz", b"definitely not gzip"), ["gzip"]),
    (_truncated, ["truncated", "Explicit VR Little Endian"]),
    (_no_pixels, ["no pixel data"]),
    (lambda tmp_path: Path(_testdata("examples_palette.dcm")), ["PALETTE COLOR"]),
], ids=["missing", "empty", "random-bytes", "not-gzip", "truncated", "no-pixels", "palette"])
def test_bad_dicom_raises_data_error_with_path_and_reason(tmp_path, make, words):
    path = make(tmp_path)

    with pytest.raises(DataError) as caught:
        read_dicom(path)

    assert str(path) in str(caught.value)
    for word in words:
        assert word in caught.value.reason


def test_truncated_gzip_is_refused(tmp_path):
    whole = gzip.compress(_write(tmp_path / "x.dcm", _picture()).read_bytes())
    path = tmp_path / "cut.dcm.gz"
    path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_dicom(path)
