"""nnocc_generate_dataset: a synthetic KiTS-like CT (or two-channel MRI-like) dataset in raw format."""
from nnocc.cli import common
from nnocc.cli.environment import data_folders
from nnocc.dataset_conversion.synthetic import MODALITIES, generate_dataset


def build():
    p = common.parser(__doc__)
    p.add_argument("-d", "--dataset_id", type=int, default=901, help="id of the DatasetXXX_Name folder")
    p.add_argument("--name", default=None, help="dataset name (default SyntheticCT / SyntheticMRI)")
    p.add_argument("--modality", choices=MODALITIES, default="ct")
    p.add_argument("--num_training", type=int, default=20)
    p.add_argument("--num_test", type=int, default=5)
    p.add_argument("--shape", type=int, nargs=3, default=[40, 120, 120], help="nominal (z, y, x) voxels per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--file_ending", default=".nii.gz")
    p.add_argument("--regions", action="store_true", help="declare KiTS23's hierarchical regions in dataset.json")
    p.add_argument("-o", "--output_folder", default=None, help="raw folder (default: $nnocc_raw)")
    common.add_processes(p)
    return p


def main_args(args):
    folder = generate_dataset(args.output_folder or data_folders().raw, args.dataset_id, args.name,
                              args.num_training, args.num_test, args.shape, args.modality, args.seed,
                              args.file_ending, args.regions, args.num_processes)
    print(folder)


main = common.entry(build, main_args)
