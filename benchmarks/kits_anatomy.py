"""Benchmark data of real anatomy: KiTS23 label maps with CT painted around them (nothing downloaded).

    python -m benchmarks.kits_anatomy --kits23 PATH --raw FOLDER [--dataset-id 992] [--train 40] [--test 10]
                                      [--spacing 3 2 2] [--native case_00123 ...]

Writes ``Dataset992_KiTSAnatomy`` in nnU-Net's raw format into FOLDER: the kidney region of real
label maps (case_00000..case_00299 only; the later cases are kept for independent evaluation),
resampled to a CPU-trainable spacing, with contrast-CT intensities painted by
``nnocc.dataset_conversion.real_anatomy``.  ``--native`` also paints whole scans at their own
resolution (512 x 512 in-plane) into ``imagesTsNative`` / ``labelsTsNative``, for KiTS-sized
inference.  The labels stay CC BY-NC-SA: keep the generated folders out of the repository.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from nnocc.dataset_conversion.real_anatomy import make_real_anatomy_dataset, paint_native_cases

LAST_PUBLIC_CASE = 299


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True, help="KiTS23 checkout (its dataset/ folder is read)")
    p.add_argument("--raw", type=Path, required=True, help="raw-data folder to write the dataset into")
    p.add_argument("--dataset-id", type=int, default=992)
    p.add_argument("--train", type=int, default=40)
    p.add_argument("--test", type=int, default=10)
    p.add_argument("--spacing", type=float, nargs=3, default=[3.0, 2.0, 2.0], help="z y x, mm")
    p.add_argument("--native", nargs="*", default=[], help="cases to paint at their own resolution as well")
    p.add_argument("-np", "--num-processes", type=int, default=2)
    args = p.parse_args(argv)
    folder = make_real_anatomy_dataset(args.kits23, args.raw, args.dataset_id, args.train, args.test, args.spacing,
                                       last_case=LAST_PUBLIC_CASE, num_processes=args.num_processes)
    if args.native:
        paint_native_cases(args.kits23, args.native, folder / "imagesTsNative", folder / "labelsTsNative",
                           args.num_processes, LAST_PUBLIC_CASE)
    return folder


if __name__ == "__main__":
    print(main())
