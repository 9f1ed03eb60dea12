"""A site's data library: its sources (MIMIC-CXR, manifests), image and DICOM decoding, decoded
examples and evaluation inputs; ``sim``, ``server`` and ``bench`` read data through it too."""
