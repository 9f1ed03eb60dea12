"""Synthetic MIMIC-CXR: the embedded default dataset, written in the real on-disk layout.

`generate(out)` writes patients with chest radiographs and CT slices, English reports (MIMIC
style) and their Chinese translations, and the official MIMIC-CXR-JPG CSVs, so every loader that
reads real MIMIC-CXR reads this too. Every finding leaves a localised trace in the images, so
zero-shot diagnosis and report generation are learnable; `difficulty` sets how faint.
"""
from .generator import DEFAULT_DIFFICULTY, DEFAULT_PATIENTS, GENERATOR_VERSION, generate

__all__ = ["DEFAULT_DIFFICULTY", "DEFAULT_PATIENTS", "GENERATOR_VERSION", "generate"]
