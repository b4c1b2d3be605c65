"""Stage 3: preprocessed data for the configurations of a plan."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from nnocc.io.raw_dataset import RawDataset
from nnocc.paths import DatasetPaths
from nnocc.planning.run import load_plans
from nnocc.preprocessing.point_clouds import run_point_clouds
from nnocc.preprocessing.preprocessor import run_preprocessing


def run_preprocessing_for_plans(paths: DatasetPaths, plans_name: str = "nnoccPlans",
                                configurations: Optional[Sequence[str]] = None, num_processes: int = 1,
                                clean: bool = False) -> List[Path]:
    """One preprocessed copy per data folder: configurations that share spacing and normalisation
    (the same ``data_identifier``) share it.  A configuration whose encoder reads point clouds also
    gets its contour clouds, beside the data folder."""
    plans = load_plans(paths, plans_name)
    dataset = RawDataset(paths.raw)
    names = list(configurations) if configurations else list(plans.configurations)
    folders: List[Path] = []
    for name in names:
        config = plans.configuration(name)
        folder = paths.preprocessed_data(config.data_folder_name(plans.plans_name))
        if folder not in folders:
            folders.append(run_preprocessing(dataset, config, folder, num_processes, clean))
        if config.point_cloud is not None:
            clouds = paths.preprocessed_data(config.point_cloud_folder_name(plans.plans_name))
            folders.append(run_point_clouds(folder, clouds, config, num_processes, clean))
    return folders
