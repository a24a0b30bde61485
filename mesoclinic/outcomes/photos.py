"""Checking a clinical photo and re-encoding it without metadata. Pure: Pillow, no Django.

A photo from a phone or a tablet carries more than the picture: EXIF with the camera, the time
and often the GPS position of the patient's home or the clinic, XMP, comments and an ICC colour
profile. `prepare` keeps only the pixels, and holds as few of them at once as it can, because
memory follows the pixels, not the file: a 768 KB JPEG of 7000 × 7000 pixels is 147 MB decoded.

1. Refuse an empty file or one over the byte limit, before decoding anything.
2. Identify the type from the bytes themselves (JPEG or PNG only); the file name and the
   browser's content type are ignored, since either can say anything.
3. Read the dimensions from the header and refuse a picture too small to be useful, or with
   more pixels than the budget (Limits.max_pixels), before the pixels are decoded (a
   "decompression bomb" is a small file that expands to gigabytes). Pillow's own bomb guard is
   turned into an error as a second fence.
4. Verify the file. A JPEG larger than the stored size is decoded at a reduced scale (1/2, 1/4
   or 1/8, straight from its DCT coefficients) when that still leaves at least the stored size,
   so that it is never held larger than needed; then decode it: a truncated or damaged file is
   refused here.
5. Scale the picture down to the stored long side (Limits.max_side) when it is larger, a band
   of rows at a time, so that every later step works on the stored size only.
6. Turn the picture upright by its EXIF orientation, in place (ImageOps.exif_transpose), which
   must happen before the EXIF is dropped, or a portrait taken on a phone would be stored lying
   on its side.
7. Convert to sRGB when the picture carries an ICC profile, so that dropping the profile does not
   shift the colours (a tablet's camera often writes Display P3).
8. Drop every piece of metadata Pillow keeps beside the pixels (its `info`, which the encoders
   read comments and profiles from), and encode: JPEG stays JPEG, PNG stays PNG. The SHA-256 is
   of these stored bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Limits. SPEC gives none; these are the product's choices, each with its reason. The ones a
# clinic may change are the defaults of Limits, which the Django side fills from settings.
# A 48-megapixel phone JPEG is about 12 MB, so 15 MB leaves room for one at full quality.
MAX_BYTES = 15 * 1024 * 1024
# Below 480 px on the short side an area's texture (the cellulite dimples) cannot be judged.
MIN_SHORT_SIDE = 480
# No camera in clinical use writes a side longer than 8000 px; more is a mistake or an attack.
MAX_LONG_SIDE = 8000
# The pixel budget: decoding costs 3 bytes a pixel (4 with transparency), so 36 megapixels is
# at most 108–144 MB, and it takes in any 12 or 24 MP phone photo and a 33 MP camera's.
MAX_PIXELS = 36_000_000
# The stored long side: 4096 keeps a 12 MP phone photo (4032 × 3024) exactly as taken, and is
# far more than any screen shows of one area.
MAX_SIDE = 4096
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
class Limits:
    """What one photo may cost: its bytes, its pixels, and the long side it is stored at."""

    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE


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


def too_large(size: int | None, limit: int = MAX_BYTES) -> str:
    """The refusal of a file of `size` bytes, or of one stopped while it was still arriving
    (None), whose whole size nobody knows."""
    most = _megabytes(limit)
    shown = most if size is None else _megabytes(size)
    return f"is {'over ' if shown == most else ''}{shown}; a photo may be at most {most}."


def check_size(size: int, limit: int = MAX_BYTES) -> None:
    """Step 1, usable before the bytes are read: refuse empty and oversized files."""
    if size <= 0:
        raise PhotoError("is empty.")
    if size > limit:
        raise PhotoError(too_large(size, limit))


def _megapixels(n: int) -> str:
    shown = f"{n / 1_000_000:.1f}".removesuffix(".0")
    return f"{shown} megapixel{'' if shown == '1' else 's'}"


def check_dimensions(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
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
    if width * height > max_pixels:
        raise PhotoError(
            f"is {width} × {height} pixels ({_megapixels(width * height)}); a photo may have "
            f"at most {_megapixels(max_pixels)}. Take it with the camera's standard resolution, "
            "or make it smaller."
        )


def stored_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The size a picture is stored at: as it is, or scaled down to a long side of max_side
    with its proportions kept."""
    long = max(width, height)
    if long <= max_side:
        return width, height
    return max(1, round(width * max_side / long)), max(1, round(height * max_side / long))


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise PhotoError("is not a JPEG or PNG image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("has far more pixels than a photo may have.") from None
    except (OSError, SyntaxError, ValueError):
        # A header cut short ("Truncated File Read") or malformed.
        raise PhotoError("is damaged or incomplete: it could not be read.") from None


def _to_srgb(img: Image.Image) -> Image.Image:
    """Step 7, in place when the mode stays the same. A profile that cannot be read or applied is
    dropped as it is, which at worst leaves the colours as an sRGB screen would have shown them
    anyway."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        if mode == img.mode:
            ImageCms.profileToProfile(img, source, target, outputMode=mode, inPlace=True)
            return img
        converted = ImageCms.profileToProfile(img, source, target, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img
    return converted if converted is not None else img


# Output rows resampled at a time by _scale_down: small enough that a band's buffers are a few
# megabytes, large enough that the per-call cost does not show.
BAND_ROWS = 256


def _scale_down(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Step 5: resample to `size` one band of rows at a time. Pillow's resize of the whole
    picture holds three large buffers at once: the picture, the picture resampled in one
    direction, and the result. Band by band, the second is a few megabytes, and for a 36 MP
    picture stored at 4096 px that saves about 70 MB. Each band reads the rows around it for
    the filter, so the seams do not show (they differ from one resize by at most 1 in 255)."""
    if img.mode not in ("L", "RGB", "CMYK", "RGBA", "LA"):
        # Palette, bilevel and 16-bit pictures are rare for photos; Pillow handles them whole.
        img.thumbnail(size, Image.Resampling.LANCZOS)
        return img
    info = img.info
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(img.mode)
    if premultiplied:
        # Resampling premultiplied alpha keeps transparent pixels from bleeding their colour;
        # Pillow's resize would convert the whole picture for every band.
        img = img.convert(premultiplied)
    width, height = img.size
    out = Image.new(img.mode, size)
    rows = height / size[1]
    for top in range(0, size[1], BAND_ROWS):
        bottom = min(size[1], top + BAND_ROWS)
        band = img.resize(
            (size[0], bottom - top),
            Image.Resampling.LANCZOS,
            box=(0, top * rows, width, bottom * rows),
        )
        out.paste(band, (0, top))
    if premultiplied:
        out = out.convert(img.mode.replace("a", "A"))
    out.info = info  # the orientation and colour profile, still needed upright and in sRGB
    return out


def _output_mode(img: Image.Image, fmt: str) -> str:
    if fmt == "JPEG":
        return "L" if img.mode == "L" else "RGB"
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img.mode
    has_alpha = img.mode in ("PA", "La") or "transparency" in img.info
    return "RGBA" if has_alpha else "RGB"


@dataclass
class Decoded:
    """A picture decoded for storage (steps 1–4), with the size it is to be stored at."""

    image: Image.Image
    format: str
    stored_size: tuple[int, int]


def decode(data: bytes, limits: Limits = Limits()) -> Decoded:  # noqa: B008 - frozen
    """Steps 1 to 4: check the file and its header, then decode it, a large JPEG at a reduced
    scale. Raises PhotoError naming the reason."""
    check_size(len(data), limits.max_bytes)
    with warnings.catch_warnings():
        # Pillow warns (and only above twice its limit, raises) about a decompression bomb.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        probe = _open(data)
        fmt = "JPEG" if probe.format in ("JPEG", "MPO") else "PNG"
        check_dimensions(*probe.size, max_pixels=limits.max_pixels)
        target = stored_size(*probe.size, max_side=limits.max_side)
        try:
            probe.verify()
            img = _open(data)
            if fmt == "JPEG" and target != img.size:
                # The largest reduction that still leaves at least the stored size: nothing
                # that will be stored is lost, and the full size is never held.
                img.draft(None, target)
            img.load()
        except PhotoError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning):
            raise PhotoError("is damaged or incomplete: it could not be read.") from None
    return Decoded(img, fmt, target)


def prepare(data: bytes, limits: Limits = Limits()) -> Prepared:  # noqa: B008 - frozen
    """Check a photo and re-encode it without any metadata; see the module's docstring for the
    steps. Raises PhotoError naming the reason."""
    decoded = decode(data, limits)
    img, fmt, target = decoded.image, decoded.format, decoded.stored_size
    del decoded  # so that the thumbnail below is the only holder of the full pixels
    if img.size != target:
        img = _scale_down(img, target)
    ImageOps.exif_transpose(img, in_place=True)
    upright = _to_srgb(img)
    mode = _output_mode(upright, fmt)
    try:
        clean = upright if upright.mode == mode else upright.convert(mode)
    except ValueError:
        raise PhotoError(f"has a colour mode ({upright.mode}) that cannot be stored.") from None
    # Step 8: the encoders read a comment (JPEG) and a colour profile (PNG) from `info`, so
    # empty it; EXIF, XMP and text chunks are only written when passed, which they are not.
    clean.info = {}
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
