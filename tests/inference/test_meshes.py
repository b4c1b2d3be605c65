"""Meshes lie in physical LPS millimetres: a sphere's surface sits at its radius from its centre."""
import struct

import numpy as np

from nnocc.inference.meshes import surface, write_stl, write_vtk
from nnocc.io.images import ImageGeometry


def test_sphere_surface_in_physical_coordinates(tmp_path):
    angle = 0.5
    direction = [np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1]
    geometry = ImageGeometry([30, 40, 50], [2.0, 0.8, 0.6], [10.0, -20.0, 5.0], direction)
    index = np.indices(geometry.shape).reshape(3, -1).T
    centre_index = np.array([15.0, 20.0, 25.0])
    physical = geometry.index_to_physical(index)
    centre = geometry.index_to_physical(centre_index[None])[0]
    field = (np.linalg.norm(physical - centre, axis=1) <= 9.0).astype(np.float32).reshape(geometry.shape)
    vertices, faces = surface(field, 0.5, geometry)
    radii = np.linalg.norm(vertices - centre, axis=1)
    assert abs(np.median(radii) - 9.0) < 0.5 and radii.max() < 9.0 + 2.0
    write_vtk(tmp_path / "s.vtk", vertices, faces)
    write_stl(tmp_path / "s.stl", vertices, faces)
    assert "SPACE=LPS" in (tmp_path / "s.vtk").read_text().splitlines()[1]
    data = (tmp_path / "s.stl").read_bytes()
    assert struct.unpack("<I", data[80:84])[0] == len(faces) and len(data) == 84 + 50 * len(faces)


def test_empty_field_gives_an_empty_mesh():
    geometry = ImageGeometry([4, 4, 4], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    vertices, faces = surface(np.zeros((4, 4, 4)), 0.5, geometry)
    assert len(vertices) == 0 and len(faces) == 0


def test_a_kits_ordered_field_gives_the_same_surface_in_space():
    """KiTS23 stores the head-feet axis last; the mesh must land where the standard-ordered one does."""
    standard = ImageGeometry([12, 20, 24], [3.0, 0.8, 0.7], [10.0, -20.0, 5.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    field = np.zeros(standard.shape, np.float32)
    field[3:9, 5:15, 4:11] = 1.0
    stored = field[::-1, ::-1, ::-1].transpose(2, 1, 0)
    far_corner = standard.index_to_physical(np.array([[11.0, 19.0, 23.0]]))[0]
    kits = ImageGeometry(list(stored.shape), [0.7, 0.8, 3.0], far_corner.tolist(), [0, 0, -1.0, 0, -1.0, 0, -1.0, 0, 0])
    ours = surface(stored, 0.5, kits)[0]
    theirs = surface(field, 0.5, standard)[0]
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(np.sort(ours, axis=0), np.sort(theirs, axis=0), atol=1e-6)
