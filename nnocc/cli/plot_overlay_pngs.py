"""nnocc_plot_overlay_pngs: PNG slices through each structure with label outlines over the image."""
from pathlib import Path
from typing import Dict, Optional

from nnocc.cli import common
from nnocc.io.dataset_json import load_dataset_json
from nnocc.visualization.folders import overlay_folder


def build():
    p = common.parser(__doc__)
    p.add_argument("-i", "--images", required=True, help="folder of <case>_0000<ending> images")
    p.add_argument("-s", "--segmentations", required=True, help="folder of <case><ending> label maps")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("-r", "--references", default=None, help="reference label maps, drawn dashed")
    p.add_argument("-djfile", "--dataset_json", default=None,
                   help="for the labels' names (default: the segmentation folder's dataset.json, if any)")
    common.add_processes(p)
    return p


def label_names(dataset_json: Optional[str], segmentations: Path) -> Optional[Dict[int, str]]:
    path = Path(dataset_json) if dataset_json else segmentations / "dataset.json"
    if dataset_json is None and not path.is_file():
        return None
    return load_dataset_json(path).label_value_names


def main_args(args):
    names = label_names(args.dataset_json, Path(args.segmentations))
    for path in overlay_folder(Path(args.images), Path(args.segmentations), Path(args.output),
                               Path(args.references) if args.references else None, names, args.num_processes):
        print(path)


main = common.entry(build, main_args)
