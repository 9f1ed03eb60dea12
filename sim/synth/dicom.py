"""DICOM files for the `dicom=True` variant, shaped like what a hospital's archive exports.

Radiographs are 12-bit DX images, a third of them MONOCHROME1 (inverted, as many CR/DX devices
store them) so readers must honour Photometric Interpretation; CT slices store HU + 1024 with
RescaleIntercept -1024 so readers must apply the rescale. UIDs derive from the MIMIC ids, which
keeps files byte-identical between runs with the same seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation, \
    ExplicitVRLittleEndian, generate_uid

from .cohort import Image, Study
from .ct import WINDOW

DX_MAX = 4095  # 12-bit radiographs
CT_OFFSET = 1024  # stored value = HU + 1024
ORIENTATION = {"PA": ["L", "F"], "AP": ["L", "F"], "LATERAL": ["P", "F"], "AXIAL": ["L", "P"]}
"""Patient Orientation (row, column directions) of each view as the images are drawn."""


def is_monochrome1(dicom_id: str) -> bool:
    """Whether an image is stored inverted: a fixed third of images, chosen by id."""
    return int(dicom_id[:8], 16) % 3 == 0


def write_dx(path: Path, pixels: np.ndarray, study: Study, image: Image) -> None:
    """Write a radiograph (display values in [0, 1]) as a 12-bit DX file."""
    stored = np.rint(pixels * DX_MAX).astype(np.uint16)
    inverted = is_monochrome1(image.dicom_id)
    ds = _base(study, image, "DX", DigitalXRayImageStorageForPresentation)
    if inverted:
        stored = DX_MAX - stored
    ds.set_pixel_data(stored, "MONOCHROME1" if inverted else "MONOCHROME2", 12,
                      generate_instance_uid=False)
    ds.PresentationLUTShape = "INVERSE" if inverted else "IDENTITY"
    ds.WindowCenter, ds.WindowWidth = (DX_MAX + 1) // 2, DX_MAX + 1
    ds.ImagerPixelSpacing = [2.8, 2.8]  # a ~36 cm field over 128 pixels
    ds.save_as(path, enforce_file_format=True)


def write_ct(path: Path, hu: np.ndarray, study: Study, image: Image, index: int) -> None:
    """Write one axial CT slice (values in HU) as a CT file with a -1024 rescale intercept."""
    stored = np.clip(np.rint(hu) + CT_OFFSET, 0, DX_MAX).astype(np.uint16)
    ds = _base(study, image, "CT", CTImageStorage)
    ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -CT_OFFSET, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = int(WINDOW[0]), int(WINDOW[1])
    ds.PixelSpacing = [2.8, 2.8]
    ds.SliceThickness = 5.0
    ds.SliceLocation = round(-250.0 * image.level, 1)  # apex at 0 mm, base ~250 mm below
    ds.ImagePositionPatient = [-179.2, -179.2, ds.SliceLocation]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.InstanceNumber = index + 1
    ds.save_as(path, enforce_file_format=True)


def _base(study: Study, image: Image, modality: str, sop_class: str) -> Dataset:
    """Patient, study, series and instance attributes shared by both modalities."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["m3fed-synth", "image", image.dicom_id])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["m3fed-synth", "study", str(study.study_id)])
    ds.SeriesInstanceUID = generate_uid(
        entropy_srcs=["m3fed-synth", "series", str(study.study_id), image.view])
    ds.PatientID = str(study.subject_id)
    ds.PatientName = "___"
    ds.StudyID = str(study.study_id)
    ds.AccessionNumber = str(study.study_id)
    ds.StudyDate = ds.SeriesDate = study.date
    ds.StudyTime = ds.SeriesTime = study.time
    ds.Modality = modality
    ds.BodyPartExamined = "CHEST"
    ds.StudyDescription = ds.PerformedProcedureStepDescription = study.procedure
    ds.ViewPosition = image.view
    ds.PatientOrientation = ORIENTATION[image.view]
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if modality == "CT" else ["ORIGINAL", "PRIMARY"]
    return ds
