"""Which files are images: one list for every command that reads an image folder (``--source``,
``--calib-data``, ``pem compare --data``), so a folder one command accepts no other ignores in part."""

from __future__ import annotations

from pathlib import Path

# what OpenCV's imread decodes in every pip wheel
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image(path: Path) -> bool:
    """True for a file whose suffix (any case) is in :data:`IMAGE_SUFFIXES`."""
    return path.suffix.lower() in IMAGE_SUFFIXES
