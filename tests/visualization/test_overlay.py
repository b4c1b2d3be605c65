import numpy as np
import pytest
from PIL import Image

from nnocc.cli import plot_overlay_pngs
from nnocc.visualization.overlay import slice_positions


def test_overlay_png_is_written_and_not_blank(ct_raw_root, tmp_path):
    folder = ct_raw_root / "Dataset501_SmallCT"
    with pytest.raises(SystemExit) as info:
        plot_overlay_pngs.main(["-i", str(folder / "imagesTs"), "-s", str(folder / "labelsTs"), "-o", str(tmp_path),
                                "-r", str(folder / "labelsTs"), "-np", "1",
                                "-djfile", str(folder / "dataset.json")])
    assert info.value.code == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["case_0006.png", "case_0007.png"]
    pixels = np.asarray(Image.open(pngs[0]).convert("RGB")).astype(int)
    assert pixels.std() > 20                                       # an image, not a flat canvas
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 110)
    assert red.sum() > 50                                          # the kidney outline colour is drawn


def test_slices_go_through_the_structure_even_when_it_has_parts_apart():
    labels = np.zeros((20, 40, 60), np.uint8)
    labels[5:15, 10:30, 5:15] = 1            # two "kidneys": their joint centroid lies between them
    labels[6:14, 12:28, 45:55] = 1
    labels[8:11, 15:18, 47:50] = 2           # a small structure inside the smaller one
    positions = slice_positions([labels, None])
    assert len(positions) == 2
    for value, position in zip((1, 2), positions):
        assert labels[position] == value
    assert 5 <= positions[0][2] < 15         # the larger part


def test_a_missing_dataset_json_for_names_is_a_one_line_error(ct_raw_root, tmp_path, capsys):
    folder = ct_raw_root / "Dataset501_SmallCT"
    with pytest.raises(SystemExit) as info:
        plot_overlay_pngs.main(["-i", str(folder / "imagesTs"), "-s", str(folder / "labelsTs"), "-o", str(tmp_path),
                                "-djfile", str(tmp_path / "nope.json")])
    assert info.value.code != 0
    assert "nope.json: missing" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
