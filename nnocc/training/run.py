"""What one fold's training needs, resolved once from the data folders, the plans and the user's options."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from nnocc.architectures.registry import architecture_class
from nnocc.io.dataset_json import DatasetDescription, load_dataset_json
from nnocc.paths import DatasetPaths
from nnocc.planning.plans import ConfigurationPlan, Plans, TrainingPlan
from nnocc.planning.run import load_plans
from nnocc.preprocessing.point_clouds import check_point_cloud_plan, check_point_clouds
from nnocc.preprocessing.storage import list_cases
from nnocc.training.optimizers import OPTIMIZERS
from nnocc.training.splits import fold_cases, load_or_create_splits
from nnocc.training.steps import LR_SCHEDULES
from nnocc.utils.errors import NnoccError
from nnocc.utils.serialization import differences, to_dict


@dataclass
class TrainingSettings:
    fold: Union[int, str]
    device: str = "cpu"
    num_epochs: Optional[int] = None
    iterations_per_epoch: Optional[int] = None
    validation_iterations: Optional[int] = None
    time_budget_minutes: Optional[float] = None
    num_workers: int = 2                      # data-augmentation processes; 0 = in the main process
    seed: int = 12345
    continue_training: bool = False
    only_validation: bool = False
    final_validation: bool = True
    validation_tta: bool = True
    save_probabilities: bool = False          # validation probabilities, for ensembling configurations
    pretrained_weights: Optional[Path] = None
    trainer_name: str = "nnoccTrainer"
    plans_name: str = "nnoccPlans"
    overrides: Dict[str, Any] = field(default_factory=dict)
    show_progress: bool = True
    amp: bool = True                          # float16 autocast on CUDA (ignored elsewhere)
    snapshot_minutes: List[float] = field(default_factory=list)   # keep checkpoint_at_<m>min.pth for curves


@dataclass
class TrainingRun:
    paths: DatasetPaths
    plans: Plans
    config: ConfigurationPlan
    description: DatasetDescription
    training: TrainingPlan
    settings: TrainingSettings
    data_folder: Path
    output_folder: Path
    train_cases: List[str]
    val_cases: List[str]
    cloud_folder: Optional[Path] = None       # contour clouds, for a point-cloud encoder

    @property
    def regions(self) -> bool:
        return self.description.has_regions


TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def convert_setting(name: str, value: Any, current: Any) -> Any:
    """A --set value in the type of the plan's field; 'False' is False, not a non-empty string."""
    kind = type(current)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    if kind is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise NnoccError(f"--set {name}={text}: expected true or false")
    try:
        return kind(text)
    except ValueError:
        raise NnoccError(f"--set {name}={text}: expected {kind.__name__} (the plan has {current!r})") from None


def check_training_plan(plan: TrainingPlan) -> None:
    if plan.lr_schedule not in LR_SCHEDULES:
        raise NnoccError(f"lr_schedule {plan.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
    if plan.optimizer not in OPTIMIZERS:
        raise NnoccError(f"optimizer {plan.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")


def check_loss_weights(plan: TrainingPlan, architecture: str) -> None:
    """Every loss term the architecture returns needs a weight, so that none is silently left out."""
    missing = [t for t in architecture_class(architecture).LOSS_TERMS if t not in plan.loss_weights]
    if missing:
        raise NnoccError(f"training.loss_weights has no weight for {architecture}'s loss term(s) {', '.join(missing)} "
                         f"(re-plan, or --set loss_weights.{missing[0]}=VALUE)")


def apply_overrides(plan: TrainingPlan, settings: TrainingSettings) -> TrainingPlan:
    """Command-line options win over the plan: --epochs, --iterations_per_epoch, --set key=value."""
    values = dict(settings.overrides)
    for name, option in (("num_epochs", settings.num_epochs), ("iterations_per_epoch", settings.iterations_per_epoch),
                         ("validation_iterations", settings.validation_iterations)):
        if option is not None:
            values[name] = option
    known = {f.name for f in dataclasses.fields(TrainingPlan)}
    unknown = sorted({k.split(".")[0] for k in values} - known)
    if unknown:
        raise NnoccError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    converted = {k: convert_setting(k, v, getattr(plan, k)) for k, v in values.items() if "." not in k}
    for key, value in values.items():      # loss_weights.overreach=0: one entry of a mapping
        if "." in key:
            name, entry = key.split(".", 1)
            if not isinstance(getattr(plan, name), dict):
                raise NnoccError(f"--set {key}: {name} is not a mapping")
            converted[name] = {**converted.get(name, getattr(plan, name)), entry: convert_setting(key, value, 0.0)}
    updated = dataclasses.replace(plan, **converted)
    check_training_plan(updated)
    return updated


def prepare_run(paths: DatasetPaths, configuration: str, settings: TrainingSettings) -> TrainingRun:
    plans = load_plans(paths, settings.plans_name)
    config = plans.configuration(configuration)
    data_folder = paths.preprocessed_data(config.data_folder_name(plans.plans_name))
    cases = list_cases(data_folder) if data_folder.is_dir() else []
    if not cases:
        raise NnoccError(f"{data_folder}: no preprocessed cases; run nnocc_plan_and_preprocess -d {paths.name}")
    splits = load_or_create_splits(paths.splits_file, cases)
    train, val = fold_cases(splits, settings.fold, cases)
    fold_name = f"fold_{settings.fold}"
    output = paths.model_folder(configuration, settings.plans_name, settings.trainer_name) / fold_name
    check_same_plans(output.parent / "plans.json", plans, configuration)
    check_point_cloud_plan(config)
    cloud_folder = None
    if config.point_cloud is not None:
        cloud_folder = paths.preprocessed_data(config.point_cloud_folder_name(plans.plans_name))
        check_point_clouds(cloud_folder, config, cases)
    training = apply_overrides(config.training, settings)
    check_loss_weights(training, config.architecture.name)
    return TrainingRun(paths, plans, config, load_dataset_json(paths.dataset_json), training, settings, data_folder,
                       output, train, val, cloud_folder)


def check_same_plans(existing_file: Path, plans: Plans, configuration: str) -> None:
    """The folds of one model folder must share one configuration: re-planning between folds would
    otherwise silently yield folds of different architectures, which then cannot be ensembled."""
    if not existing_file.is_file():
        return
    earlier = Plans.load(existing_file).configurations.get(configuration)
    changes = differences(to_dict(earlier) if earlier else {}, to_dict(plans.configuration(configuration)))
    if changes:
        raise NnoccError(f"{existing_file}: the folds trained so far used another {configuration} plan "
                         f"({'; '.join(changes[:3])}{' ...' if len(changes) > 3 else ''}); train the new plan "
                         f"under another plans name (-p) or trainer name (-tr)")
