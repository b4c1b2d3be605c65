"""nnocc_plot_overlay_pngs: PNG slices through each structure with label outlines over the image."""
from pathlib import Path

from nnocc.cli import common
from nnocc.visualization.folders import overlay_folder


def build():
    p = common.parser(__doc__)
    p.add_argument("-i", "--images", required=True, help="folder of <case>_0000<ending> images")
    p.add_argument("-s", "--segmentations", required=True, help="folder of <case><ending> label maps")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("-r", "--references", default=None, help="reference label maps, drawn dashed")
    common.add_processes(p)
    return p


def main_args(args):
    for path in overlay_folder(Path(args.images), Path(args.segmentations), Path(args.output),
                               Path(args.references) if args.references else None, num_processes=args.num_processes):
        print(path)


main = common.entry(build, main_args)
