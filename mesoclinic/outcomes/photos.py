"""Checking a clinical photo and re-encoding it without metadata. Pure: Pillow, no Django.

A photo from a phone or a tablet carries more than the picture: EXIF with the camera, the time
and often the GPS position of the patient's home or the clinic, XMP, comments and an ICC colour
profile. `prepare` keeps only the pixels:

1. Refuse an empty file or one over MAX_BYTES, before decoding anything.
2. Identify the type from the bytes themselves (JPEG or PNG only); the file name and the
   browser's content type are ignored, since either can say anything.
3. Read the dimensions from the header and refuse a picture too small to be useful or too big
   to decode safely, before the pixels are decoded (a "decompression bomb" is a small file that
   expands to gigabytes). Pillow's own bomb guard is turned into an error as a second fence.
4. Verify the file, then decode it fully: a truncated or damaged file is refused here.
5. Turn the picture upright by its EXIF orientation (ImageOps.exif_transpose), which must happen
   before the EXIF is dropped, or a portrait taken on a phone would be stored lying on its side.
6. Convert to sRGB when the picture carries an ICC profile, so that dropping the profile does not
   shift the colours (a tablet's camera often writes Display P3).
7. Copy the pixels into a new image, which has no metadata at all, and encode that: JPEG stays
   JPEG, PNG stays PNG. The SHA-256 is of these stored bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Limits. SPEC gives none; these are the product's choices, each with its reason.
# A 48-megapixel phone JPEG is about 12 MB, so 15 MB leaves room for one at full quality.
MAX_BYTES = 15 * 1024 * 1024
# Below 480 px on the short side an area's texture (the cellulite dimples) cannot be judged.
MIN_SHORT_SIDE = 480
# No camera in clinical use writes a side longer than 8000 px; more is a mistake or an attack.
MAX_LONG_SIDE = 8000
# 48 megapixels is the largest phone sensor in common use; decoding one takes about 150 MB.
MAX_PIXELS = 50_000_000
# The JPEG quality of the re-encoded picture: visually lossless for a photograph.
JPEG_QUALITY = 90

FORMATS = ("JPEG", "PNG")
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}
# What a browser may offer in a file input's accept attribute.
ACCEPT = ",".join(CONTENT_TYPES.values())


class PhotoError(ValueError):
    """A picture refused, with the reason in words that follow the field's name."""


@dataclass(frozen=True)
class Prepared:
    data: bytes
    format: str
    width: int
    height: int
    sha256: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def check_size(size: int) -> None:
    """Step 1, usable before the bytes are read: refuse empty and oversized files."""
    if size <= 0:
        raise PhotoError("is empty.")
    if size > MAX_BYTES:
        shown, limit = _megabytes(size), _megabytes(MAX_BYTES)
        raise PhotoError(
            f"is {'over ' if shown == limit else ''}{shown}; a photo may be at most {limit}."
        )


def check_dimensions(width: int, height: int) -> None:
    """Step 3: refuse a picture too small to judge or too large to decode safely."""
    short, long = sorted((width, height))
    if short < MIN_SHORT_SIDE:
        raise PhotoError(
            f"is {width} × {height} pixels; the shorter side must be at least "
            f"{MIN_SHORT_SIDE} pixels."
        )
    if long > MAX_LONG_SIDE:
        raise PhotoError(
            f"is {width} × {height} pixels; neither side may be longer than {MAX_LONG_SIDE} pixels."
        )
    if width * height > MAX_PIXELS:
        raise PhotoError(
            f"is {width} × {height} pixels; a photo may have at most "
            f"{MAX_PIXELS // 1_000_000} megapixels."
        )


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise PhotoError("is not a JPEG or PNG image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("has far more pixels than a photo may have.") from None


def _to_srgb(img: Image.Image) -> Image.Image:
    """Step 6. A profile that cannot be read or applied is dropped as it is, which at worst
    leaves the colours as an sRGB screen would have shown them anyway."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, source, target, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img
    return converted if converted is not None else img


def _output_mode(img: Image.Image, fmt: str) -> str:
    if fmt == "JPEG":
        return "L" if img.mode == "L" else "RGB"
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img.mode
    has_alpha = img.mode in ("PA", "La") or "transparency" in img.info
    return "RGBA" if has_alpha else "RGB"


def prepare(data: bytes) -> Prepared:
    """Check a photo and re-encode it without any metadata; see the module's docstring for the
    steps. Raises PhotoError naming the reason."""
    check_size(len(data))
    with warnings.catch_warnings():
        # Pillow warns (and only above twice its limit, raises) about a decompression bomb.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        probe = _open(data)
        fmt = "JPEG" if probe.format in ("JPEG", "MPO") else "PNG"
        check_dimensions(*probe.size)
        try:
            probe.verify()
            img = _open(data)
            img.load()
        except PhotoError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning):
            raise PhotoError("is damaged or incomplete: it could not be read.") from None
    upright = ImageOps.exif_transpose(img)
    if upright is None:  # only when in_place=True, which is not used here
        upright = img
    upright = _to_srgb(upright)
    mode = _output_mode(upright, fmt)
    try:
        pixels = upright if upright.mode == mode else upright.convert(mode)
    except ValueError:
        raise PhotoError(f"has a colour mode ({upright.mode}) that cannot be stored.") from None
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    clean.save(out, format=fmt, **options)
    stored = out.getvalue()
    return Prepared(
        data=stored,
        format=fmt,
        width=clean.width,
        height=clean.height,
        sha256=hashlib.sha256(stored).hexdigest(),
    )


def metadata_of(data: bytes) -> dict[str, Any]:
    """What metadata a stored picture carries: EXIF tags, and the keys of Pillow's info
    (icc_profile, comment, xmp, exif, text chunks). For tests and for `mesoclinic` checks."""
    with Image.open(io.BytesIO(data)) as img:
        return {"exif": dict(img.getexif()), "info": sorted(img.info)}


@dataclass(frozen=True)
class Pair:
    """The baseline (earliest) and latest photo of one area and view."""

    area: str
    view: str
    baseline: Any
    latest: Any

    @property
    def comparable(self) -> bool:
        return self.latest is not None and self.latest is not self.baseline


def pairs(photos: Iterable[Any], views: Sequence[str]) -> list[Pair]:
    """Group photos (anything with area, view, taken_at and pk) into baseline and latest per
    area and view: earliest and latest by when they were taken, ties by upload order. Areas
    come in the order first seen; views in the order given."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for p in photos:
        groups.setdefault((p.area, p.view), []).append(p)
    areas = list(dict.fromkeys(area for area, _ in groups))
    found = []
    for area in areas:
        for view in views:
            taken = sorted(groups.get((area, view), []), key=lambda p: (p.taken_at, p.pk))
            if taken:
                found.append(Pair(area, view, taken[0], taken[-1] if len(taken) > 1 else None))
    return found
