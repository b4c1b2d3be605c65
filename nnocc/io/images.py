"""The one place where images are read and written.

Arrays are in SimpleITK's array order (z, y, x); ``spacing`` and ``shape`` of a geometry follow
that order.  ``origin`` and ``direction`` keep ITK's physical conventions (LPS millimetres, the
direction matrix row-major) because they describe physical space, not the array.
"""
from __future__ import annotations

import gzip
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from nnocc.utils.errors import NnoccError
from nnocc.utils.serialization import JsonDataclass

logger = logging.getLogger(__name__)

SUPPORTED_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha")
PathLike = Union[str, Path]


def file_ending(path: PathLike) -> str:
    name = Path(path).name.lower()
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    raise NnoccError(f"{path}: unsupported file type (nnocc reads {', '.join(SUPPORTED_ENDINGS)})")


@dataclass
class ImageGeometry(JsonDataclass):
    """Where an array sits in physical space."""

    shape: List[int]            # array order (z, y, x)
    spacing: List[float]        # array order, mm
    origin: List[float]         # ITK physical (x, y, z), mm
    direction: List[float]      # ITK 3x3 row-major; columns are the x, y, z index axes

    def differences(self, other: "ImageGeometry", tolerance: float = 1e-4) -> List[str]:
        """Names of the properties in which ``other`` differs (relative tolerance for spacing)."""
        found = []
        if list(self.shape) != list(other.shape):
            found.append(f"size {tuple(other.shape)} vs {tuple(self.shape)}")
        if not np.allclose(self.spacing, other.spacing, rtol=tolerance, atol=tolerance):
            found.append(f"spacing {_fmt(other.spacing)} vs {_fmt(self.spacing)}")
        if not np.allclose(self.origin, other.origin, rtol=tolerance, atol=max(tolerance, 1e-3)):
            found.append(f"origin {_fmt(other.origin)} vs {_fmt(self.origin)}")
        if not np.allclose(self.direction, other.direction, atol=tolerance):
            found.append("direction")
        return found

    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Continuous array indices (..., 3) in (z, y, x) order to physical (x, y, z) mm."""
        index_xyz = np.asarray(index_zyx, dtype=np.float64)[..., ::-1]
        spacing_xyz = np.asarray(self.spacing, dtype=np.float64)[::-1]
        return np.asarray(self.origin) + (index_xyz * spacing_xyz) @ self.direction_matrix().T

    def physical_to_index(self, points_xyz: np.ndarray) -> np.ndarray:
        spacing_xyz = np.asarray(self.spacing, dtype=np.float64)[::-1]
        local = (np.asarray(points_xyz, dtype=np.float64) - np.asarray(self.origin)) @ self.direction_matrix()
        return (local / spacing_xyz)[..., ::-1]


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def geometry_of(image: sitk.Image) -> ImageGeometry:
    return ImageGeometry(shape=list(image.GetSize())[::-1], spacing=list(image.GetSpacing())[::-1],
                         origin=list(image.GetOrigin()), direction=list(image.GetDirection()))


def _read_with_nibabel(path: Path) -> sitk.Image:
    """NIfTI files whose affine is not orthonormal (scanner shear) are refused by SimpleITK.

    nibabel reads them; we keep spacing and origin and use the nearest orthonormal direction,
    which is what most tools do and is logged so that the user knows.
    """
    import nibabel

    nii: Any = nibabel.load(str(path))
    data = np.asanyarray(nii.dataobj)
    affine = nii.affine.astype(np.float64)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    columns = ras_to_lps @ affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    u, _, vt = np.linalg.svd(columns / spacing)
    direction = u @ vt
    origin = ras_to_lps @ affine[:3, 3]
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(tuple(range(data.ndim))[::-1])))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    logger.warning("%s: direction cosines are not orthonormal; using the nearest orthonormal direction", path)
    return image


def read_sitk(path: PathLike) -> sitk.Image:
    path = Path(path)
    file_ending(path)
    if not path.is_file():
        raise NnoccError(f"{path}: file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        message = str(e)
        if "orthonormal" in message and path.name.lower().endswith((".nii", ".nii.gz")):
            try:
                return _read_with_nibabel(path)
            except Exception as nib_error:  # noqa: BLE001 - any failure here means unreadable
                message = str(nib_error)
        reason = message.strip().splitlines()[-1] if message.strip() else "unknown error"
        raise NnoccError(f"{path}: unreadable image ({reason[:160]})") from None


def read_checked(path: PathLike, expect_dim: int = 3) -> sitk.Image:
    image = read_sitk(path)
    if Path(path).name.lower().endswith(NIFTI_ENDINGS):
        verify_complete(path)
    if image.GetDimension() != expect_dim:
        raise NnoccError(f"{path}: expected a {expect_dim}D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise NnoccError(f"{path}: expected one value per voxel, got {image.GetNumberOfComponentsPerPixel()} "
                         f"(vector images are not supported; store channels as separate files)")
    return image


def read_image(path: PathLike, expect_dim: int = 3) -> Tuple[np.ndarray, ImageGeometry]:
    image = read_checked(path, expect_dim)
    return sitk.GetArrayFromImage(image), geometry_of(image)


def read_channels(paths: Sequence[PathLike]) -> Tuple[np.ndarray, ImageGeometry]:
    """All channel files of one case, stacked to (C, z, y, x) float32; geometries must agree.
    Each file is converted straight into its slot of the stack: at 512 x 512 x 400 voxels every
    intermediate copy would cost 200-400 MB."""
    stack: Optional[np.ndarray] = None
    reference: Optional[ImageGeometry] = None
    for channel, path in enumerate(paths):
        image = read_checked(path)
        geometry = geometry_of(image)
        if reference is None:
            reference = geometry
            stack = np.empty((len(paths), *geometry.shape), dtype=np.float32)
        else:
            diff = reference.differences(geometry)
            if diff:
                raise NnoccError(f"{path}: differs from the case's first channel in {'; '.join(diff)}")
        assert stack is not None
        stack[channel] = sitk.GetArrayViewFromImage(image)
        del image
    if stack is None or reference is None:
        raise NnoccError("read_channels: no files given")
    return stack, reference


NIFTI_ENDINGS = (".nii", ".nii.gz")
_SCAN_CHUNK_BYTES = 1 << 24


@dataclass(frozen=True)
class _PayloadScan:
    nonfinite: int


@lru_cache(maxsize=64)
def _scan_nifti(path: str, mtime_ns: int, size: int) -> _PayloadScan:
    """Read a NIfTI file's voxel data completely, in chunks: a truncated file is an error (SimpleITK
    silently reads one as zeros), and non-finite floats are counted from the stored values
    (SimpleITK turns NaN into 0).  Cached by modification time and size: one pass per file."""
    import nibabel

    try:
        image: Any = nibabel.load(path)
        proxy = image.dataobj
        dtype = proxy.dtype
        expected = int(np.prod(proxy.shape)) * dtype.itemsize
        offset = int(proxy.offset)
        opener = gzip.open if path.lower().endswith(".gz") else open
        with opener(path, "rb") as stream:
            stream.read(offset)
            remaining, nonfinite = expected, 0
            while remaining > 0:
                chunk = stream.read(min(_SCAN_CHUNK_BYTES, remaining))
                if not chunk:
                    raise NnoccError(f"{path}: truncated (the header announces {expected} bytes of voxel data, "
                                     f"the file holds {expected - remaining})")
                usable = len(chunk) - len(chunk) % dtype.itemsize
                if np.issubdtype(dtype, np.floating):
                    values = np.frombuffer(chunk[:usable], dtype=dtype)
                    nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
                remaining -= len(chunk)
            if opener is gzip.open:
                stream.read()    # to the end: checks the gzip stream's length and checksum
    except NnoccError:
        raise
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise NnoccError(f"{path}: unreadable or truncated ({type(e).__name__}: {e})") from None
    return _PayloadScan(nonfinite)


def verify_complete(path: PathLike) -> _PayloadScan:
    path = Path(path)
    stat = path.stat()
    return _scan_nifti(str(path), stat.st_mtime_ns, stat.st_size)


def count_nonfinite(path: PathLike, array: np.ndarray) -> int:
    """Non-finite voxels of a file: of the array, and for NIfTI files of the stored values."""
    count = int(array.size - np.isfinite(array).sum()) if np.issubdtype(array.dtype, np.floating) else 0
    if Path(path).name.lower().endswith(NIFTI_ENDINGS):
        count = max(count, verify_complete(path).nonfinite)
    return count


def _to_sitk(array: np.ndarray, geometry: ImageGeometry) -> sitk.Image:
    if list(array.shape) != list(geometry.shape):
        raise ValueError(f"array shape {array.shape} does not match geometry shape {geometry.shape}")
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in geometry.spacing[::-1]))
    image.SetOrigin(tuple(float(o) for o in geometry.origin))
    image.SetDirection(tuple(float(d) for d in geometry.direction))
    return image


def write_image(array: np.ndarray, geometry: ImageGeometry, path: PathLike, compress: bool = True) -> None:
    """Write atomically: a temporary file with the same ending in the same folder, then rename."""
    path = Path(path)
    ending = file_ending(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:-len(ending)]}.", suffix=f".tmp{ending}")
    os.close(handle)
    try:
        sitk.WriteImage(_to_sitk(array, geometry), tmp, useCompression=compress)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_segmentation(labels: np.ndarray, geometry: ImageGeometry, path: PathLike) -> None:
    dtype = np.uint8 if labels.size == 0 or labels.max() < 256 else np.uint16
    write_image(labels.astype(dtype, copy=False), geometry, path)
