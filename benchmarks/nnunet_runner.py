"""Train nnU-Net v2 for a wall-clock budget.  Runs with nnU-Net's own Python (its virtual
environment) and imports nothing from nnocc.

    python benchmarks/nnunet_runner.py DATASET CONFIGURATION FOLD BUDGET_MINUTES DEVICE OUT_JSON [MARKS]

nnU-Net's standard trainer, changed only in when it stops: epochs of 25 iterations (instead of
250, so the budget is checked often), the poly learning rate driven by the share of the budget
used (nnocc's ``--budget_minutes`` does the same), and a stop once the budget is spent.  It goes
by the standard trainer's name, which nnU-Net writes into the output folder's name and the
checkpoint, so ``nnUNetv2_predict -tr nnUNetTrainer`` loads the result as usual: inference
rebuilds the same network, and nothing needs relabelling (or unpickling) afterwards.  MARKS
(minutes, comma-separated) also keeps ``checkpoint_at_<M>min.pth`` when the clock passes each one,
as nnocc's ``--snapshot_minutes`` does, for learning curves (``nnUNetv2_predict -chk``).
"""
import json
import sys
import time
from os.path import join

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name


class BudgetTrainer(nnUNetTrainer):
    budget_seconds = 60.0
    snapshot_minutes: list = []

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 - nnU-Net's own default
        # nnU-Net records its constructor's arguments by name, so the signature is spelled out
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = 25
        self.num_val_iterations_per_epoch = 5
        self.started = None
        self.iterations_done = 0
        self.snapshots_due = sorted(self.snapshot_minutes)

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        share = min((time.time() - self.started) / self.budget_seconds, 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.initial_lr * (1 - share) ** 0.9

    def save_due_snapshots(self):
        while self.snapshots_due and time.time() - self.started >= 60 * self.snapshots_due[0]:
            minutes = self.snapshots_due.pop(0)
            self.save_checkpoint(join(self.output_folder, f"checkpoint_at_{minutes:g}min.pth"))
            self.print_to_log_file(f"snapshot at {minutes:g} min, {self.iterations_done} iterations")

    def run_budget(self):
        self.on_train_start()
        self.started = time.time()
        while time.time() - self.started < self.budget_seconds:
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = []
            for _ in range(self.num_iterations_per_epoch):
                outputs.append(self.train_step(next(self.dataloader_train)))
                self.iterations_done += 1
                self.save_due_snapshots()
                if time.time() - self.started >= self.budget_seconds:
                    break
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [self.validation_step(next(self.dataloader_val)) for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()
        seconds = time.time() - self.started
        self.on_train_end()
        return seconds


BudgetTrainer.__name__ = BudgetTrainer.__qualname__ = nnUNetTrainer.__name__


def main():
    dataset, configuration, fold, budget_minutes, device, out_json = sys.argv[1:7]
    name = maybe_convert_to_dataset_name(dataset)
    plans = load_json(join(nnUNet_preprocessed, name, "nnUNetPlans.json"))
    plans["continue_training"] = False  # what nnU-Net's own launcher adds before building a trainer
    dataset_json = load_json(join(nnUNet_preprocessed, name, "dataset.json"))
    BudgetTrainer.budget_seconds = float(budget_minutes) * 60
    BudgetTrainer.snapshot_minutes = [float(m) for m in sys.argv[7].split(",")] if len(sys.argv) > 7 else []
    trainer = BudgetTrainer(plans, configuration, int(fold), dataset_json, torch.device(device))
    seconds = trainer.run_budget()
    with open(out_json, "w") as f:
        json.dump({"training_seconds": seconds, "iterations": trainer.iterations_done,
                   "epochs": trainer.current_epoch, "seconds_per_iteration": seconds / max(trainer.iterations_done, 1),
                   "model_folder": trainer.output_folder_base}, f, indent=2)


if __name__ == "__main__":
    main()
