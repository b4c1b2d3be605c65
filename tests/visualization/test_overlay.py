import numpy as np
import pytest
from PIL import Image

from nnocc.cli import plot_overlay_pngs


def test_overlay_png_is_written_and_not_blank(ct_raw_root, tmp_path):
    folder = ct_raw_root / "Dataset501_SmallCT"
    with pytest.raises(SystemExit) as info:
        plot_overlay_pngs.main(["-i", str(folder / "imagesTs"), "-s", str(folder / "labelsTs"), "-o", str(tmp_path),
                                "-r", str(folder / "labelsTs"), "-np", "1"])
    assert info.value.code == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["case_0006.png", "case_0007.png"]
    pixels = np.asarray(Image.open(pngs[0]).convert("RGB")).astype(int)
    assert pixels.std() > 20                                       # an image, not a flat canvas
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 110)
    assert red.sum() > 50                                          # the kidney outline colour is drawn
