"""Training on a CPU: how fast it goes, and what to plan instead when a GPU-sized plan crawls."""
from __future__ import annotations

from typing import List

from nnocc.training.run import TrainingRun

CPU_PLAN_GB = 1.0            # the memory target whose plan trains at a useful pace on a few CPU cores


class CpuSpeedProbe:
    """Seconds per training iteration (batch loading included), averaged over a few iterations after
    the first, which also waits for the data workers to start."""

    def __init__(self, skip: int = 1, measure: int = 3):
        self.skip, self.measure = skip, measure
        self.durations: List[float] = []

    def add(self, seconds: float) -> bool:
        """Call after each iteration with its duration; True once, when the measurement is complete."""
        self.durations.append(seconds)
        return len(self.durations) == self.skip + self.measure

    def seconds_per_iteration(self) -> float:
        timed = self.durations[self.skip:self.skip + self.measure]
        return sum(timed) / max(len(timed), 1)


def cpu_speed_advice(run: TrainingRun, seconds: float) -> str:
    """What training on this CPU will cost, and how to plan a configuration that fits it."""
    t = run.training
    epoch_minutes = seconds * t.iterations_per_epoch / 60
    text = (f"training on the CPU: {seconds:.2f} s per iteration (measured); an epoch of {t.iterations_per_epoch} "
            f"iterations takes about {epoch_minutes:.1f} min")
    budget = run.settings.time_budget_minutes
    if budget:
        text += f"; the {budget:g}-minute budget allows about {int(budget * 60 / seconds)} iterations"
    else:
        text += f", {t.num_epochs} epochs about {epoch_minutes * t.num_epochs / 60:.1f} h"
    if run.plans.gpu_memory_target_gb > CPU_PLAN_GB:
        cpu_plans = f"{run.plans.plans_name}_{CPU_PLAN_GB:g}GB"
        text += (f". This plan was made for a {run.plans.gpu_memory_target_gb:g} GB GPU; a configuration sized for the "
                 f"CPU: nnocc_plan_experiment -d {run.paths.name} --gpu_memory_target {CPU_PLAN_GB:g} "
                 f"--plans_name {cpu_plans} && nnocc_preprocess -d {run.paths.name} -p {cpu_plans}, then "
                 f"nnocc_train {run.paths.name} {run.config.name} {run.settings.fold} -p {cpu_plans}")
    return text
