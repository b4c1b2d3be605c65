"""Surface meshes of predicted structures in physical LPS millimetres (3D Slicer loads them on the image)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Tuple

import numpy as np
from skimage.measure import marching_cubes

from nnocc.io.images import ImageGeometry
from nnocc.utils.atomic import atomic_write_bytes

MESH_FORMATS = ("vtk", "stl")


def surface(field: np.ndarray, level: float, geometry: ImageGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """Marching cubes on an occupancy field given on ``geometry``'s grid: (vertices LPS mm, faces)."""
    if field.max() <= level or field.min() >= level:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    padded = np.pad(field.astype(np.float32), 1, constant_values=min(0.0, float(field.min())))
    vertices, faces, _, _ = marching_cubes(padded, level=level)
    return geometry.index_to_physical(vertices - 1.0), faces


def write_vtk(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    lines = ["# vtk DataFile Version 3.0", "nnocc surface SPACE=LPS", "ASCII", "DATASET POLYDATA",
             f"POINTS {len(vertices)} float"]
    lines += [f"{x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    lines.append(f"POLYGONS {len(faces)} {4 * len(faces)}")
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("ascii"))


def write_stl(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    triangles = vertices[faces].astype(np.float32) if len(faces) else np.zeros((0, 3, 3), np.float32)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.clip(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12, None)
    header = b"nnocc surface SPACE=LPS".ljust(80, b" ")
    body = bytearray(header + struct.pack("<I", len(triangles)))
    records = np.zeros(len(triangles), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["n"], records["v"] = normals, triangles
    body += records.tobytes()
    atomic_write_bytes(path, bytes(body))


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    (write_stl if path.suffix == ".stl" else write_vtk)(path, vertices, faces)
