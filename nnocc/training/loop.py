"""The training loop of one fold, composed of small parts (run, data loader, steps, checkpoint, logger)."""
from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from tqdm import tqdm

import nnocc
from nnocc.architectures.base import OccupancyArchitecture
from nnocc.architectures.registry import build_model
from nnocc.training.checkpoint import latest_resumable, load_encoder_weights, restore_rng_state, rng_state, snapshot_name
from nnocc.training.cpu_speed import CpuSpeedProbe, cpu_speed_advice
from nnocc.training.dataloader import BatchSettings, make_loader
from nnocc.training.distributed import DistributedContext
from nnocc.training.losses import LossWeights, OccupancyLoss
from nnocc.training.optimizers import make_optimizer, set_learning_rate
from nnocc.training.progress import TrainingHistory, TrainingLogger
from nnocc.training.run import TrainingRun
from nnocc.training.steps import learning_rate, pseudo_dice, to_device, train_step, validation_step
from nnocc.training.validation import final_validation
from nnocc.utils.atomic import atomic_copy
from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json
from nnocc.utils.memory import memory_peak_mb

logger = logging.getLogger(__name__)
LATEST_EVERY_SECONDS = 600   # besides every ``checkpoint_every`` epochs: a kill loses at most ten minutes


@dataclass
class TrainingState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    rng: np.random.Generator
    epoch: int = 0
    best_ema: float = -1.0
    elapsed_seconds: float = 0.0
    iterations: int = 0
    history: TrainingHistory = field(default_factory=TrainingHistory)
    stopped_by_budget: bool = False


class FoldTrainer:
    def __init__(self, run: TrainingRun, ctx: Optional[DistributedContext] = None):
        self.run = run
        self.ctx = ctx or DistributedContext()
        self.device = self.ctx.device(run.settings.device)
        self.amp = self.device.type == "cuda" and run.settings.amp
        self.folder = run.output_folder
        names = run.description.output_names if run.regions else run.description.output_names[1:]
        self.log = TrainingLogger(self.folder, names, enabled=self.ctx.is_main)
        t = run.training
        self.loss = OccupancyLoss(run.regions, LossWeights(t.ce_weight, t.dice_weight, t.aux_weight, t.loss_weights))
        self.state = self._initial_state()
        self.last_saved = time.time()
        self.snapshots_due = list(run.settings.snapshot_minutes)
        self.cpu_probe: Optional[CpuSpeedProbe] = CpuSpeedProbe() if self.device.type == "cpu" else None

    # ---- set-up ----------------------------------------------------------------------------
    def _initial_state(self) -> TrainingState:
        torch.manual_seed(self.run.settings.seed + self.ctx.rank)
        arch = self.run.config.architecture
        network = build_model(arch.name, arch.kwargs)
        if self.run.settings.pretrained_weights:
            self.log.line(load_encoder_weights(network, Path(self.run.settings.pretrained_weights)))
        network = network.to(self.device)
        model: torch.nn.Module = network
        if self.ctx.enabled:
            model = torch.nn.parallel.DistributedDataParallel(
                network, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        t = self.run.training
        optimizer = make_optimizer(network.parameter_groups(t.initial_lr), t)
        scaler = torch.amp.GradScaler("cuda") if self.amp else None
        return TrainingState(model, optimizer, scaler, np.random.default_rng([self.run.settings.seed, self.ctx.rank]))

    @staticmethod
    def network_of(model: torch.nn.Module) -> OccupancyArchitecture:
        network = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
        assert isinstance(network, OccupancyArchitecture)
        return network

    @property
    def network(self) -> OccupancyArchitecture:
        return self.network_of(self.state.model)

    # ---- checkpoints -----------------------------------------------------------------------
    def checkpoint_payload(self) -> dict:
        s = self.state
        return {"network_weights": self.network.state_dict(), "optimizer_state": s.optimizer.state_dict(),
                "scaler_state": s.scaler.state_dict() if s.scaler else None, "epoch": s.epoch,
                "best_ema": s.best_ema, "elapsed_seconds": s.elapsed_seconds, "iterations": s.iterations,
                "history": s.history.to_state(), "peak_memory_mb": memory_peak_mb(self.device),
                "rng": rng_state(s.rng), "architecture": self.run.config.architecture.name,
                "architecture_kwargs": self.run.config.architecture.kwargs,
                "configuration": self.run.config.name, "plans_name": self.run.plans.plans_name,
                "trainer": self.run.settings.trainer_name, "nnocc_version": nnocc.__version__}

    def save(self, name: str) -> None:
        if self.ctx.is_main:
            save_checkpoint(self.folder / name, self.checkpoint_payload())

    def save_due_snapshots(self, elapsed_seconds: float) -> None:
        """checkpoint_at_<m>min.pth once the training clock passes each requested minute (a learning curve's points)."""
        while self.snapshots_due and elapsed_seconds >= 60 * self.snapshots_due[0]:
            minutes = self.snapshots_due.pop(0)
            name = snapshot_name(minutes)
            if (self.folder / name).is_file():
                continue   # taken before a resume
            self.save(name)
            self.log.line(f"snapshot at {minutes:g} min ({self.state.iterations} iterations): {name}")

    def restore(self, path: Path) -> None:
        payload = load_checkpoint(path, map_location=str(self.device))
        s = self.state
        try:
            self.network.load_state_dict(payload["network_weights"])
            s.optimizer.load_state_dict(payload["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as e:
            reason = str(e).strip().splitlines()[-1].strip()[:200]
            raise NnoccError(f"{path}: does not fit the {self.run.config.name} network of the current plans "
                             f"({reason}); re-plan as it was trained, or train this fold afresh") from None
        if s.scaler is not None and payload.get("scaler_state"):
            s.scaler.load_state_dict(payload["scaler_state"])
        s.epoch, s.best_ema = int(payload["epoch"]), float(payload["best_ema"])
        s.elapsed_seconds = float(payload.get("elapsed_seconds", 0.0))
        s.iterations = int(payload.get("iterations", 0))
        s.history = TrainingHistory.from_state(payload["history"])
        restore_rng_state(payload["rng"], s.rng)

    # ---- the loop --------------------------------------------------------------------------
    def progress(self) -> float:
        t, s = self.run.training, self.state
        budget = self.run.settings.time_budget_minutes
        by_time = s.elapsed_seconds / (60 * budget) if budget else 0.0
        return max(s.epoch / max(t.num_epochs, 1), by_time)

    def over_budget(self, epoch_started: float) -> bool:
        budget = self.run.settings.time_budget_minutes
        if not budget:
            return False
        spent = self.state.elapsed_seconds + time.time() - epoch_started
        over = self.ctx.mean(torch.tensor(float(spent >= 60 * budget)))  # every rank stops together
        return bool(over.item() > 0)

    def make_loaders(self):
        r, ctx = self.run, self.ctx
        seed = r.settings.seed + 7919 * self.state.epoch + 104729 * ctx.rank
        batch = ctx.local_batch_size(r.config.batch_size)
        train = make_loader(r.data_folder, r.train_cases, r.config, r.description,
                            BatchSettings(batch, True, seed), r.settings.num_workers, r.cloud_folder)
        val_cases = r.val_cases or r.train_cases
        val = make_loader(r.data_folder, val_cases, r.config, r.description,
                          BatchSettings(batch, False, r.settings.seed + 1), max(0, min(1, r.settings.num_workers)),
                          r.cloud_folder)
        return train, val

    def train(self) -> Path:
        r = self.run
        if self.ctx.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.write_run_files()
        if r.settings.continue_training:
            self.resume()
        if r.settings.only_validation:
            self.restore(self._checkpoint_for_validation())
            self.validate()
            return self.folder
        budget = r.settings.time_budget_minutes
        if self.state.epoch >= r.training.num_epochs or (budget and self.state.elapsed_seconds >= 60 * budget):
            self.log.line(f"training already finished ({self.state.epoch} epochs, "
                          f"{self.state.elapsed_seconds / 60:.1f} min)")
            return self.folder
        train_loader, val_loader = self.make_loaders()
        try:
            self.epochs(train_loader, val_loader)
        except KeyboardInterrupt:
            self.save("checkpoint_latest.pth")
            self.log.line(f"interrupted in epoch {self.state.epoch}; saved checkpoint_latest.pth "
                          f"(continue with --c)")
            raise
        finally:
            for loader in (train_loader, val_loader):
                if hasattr(loader, "_finish"):
                    loader._finish()
        self.check_ranks_in_sync()
        self.save("checkpoint_final.pth")
        if self.ctx.is_main:
            (self.folder / "checkpoint_latest.pth").unlink(missing_ok=True)
        self.log.line(f"training done: {self.state.epoch} epochs, {self.state.elapsed_seconds / 60:.1f} min"
                      + (" (stopped at the time budget)" if self.state.stopped_by_budget else ""))
        if r.settings.final_validation:
            self.validate()
        return self.folder

    def check_ranks_in_sync(self) -> None:
        """DDP keeps replicas identical; verify it rather than trust it (cheap: one checksum each)."""
        if not self.ctx.enabled:
            return
        flat = torch.cat([p.detach().double().flatten() for p in self.network.parameters()])
        checksum = torch.stack([flat.sum(), (flat * flat).sum()]).to(self.device)
        gathered = [torch.zeros_like(checksum) for _ in range(self.ctx.world_size)]
        torch.distributed.all_gather(gathered, checksum)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise NnoccError(f"ranks disagree after training: checksums {[g.tolist() for g in gathered]}")
        self.log.line(f"all {self.ctx.world_size} ranks hold identical weights (checksum {gathered[0][0].item():.6e})")

    def validate(self) -> None:
        """Final validation on rank 0 with the inference code; the summary goes to the log."""
        if not self.ctx.is_main:
            return
        settings = self.run.settings
        summary = final_validation(self.run, self.network, self.device.type, settings.validation_tta,
                                   settings.save_probabilities)
        if summary is not None:
            means = ", ".join(f"{n} {v['dice']:.4f}" for n, v in summary["mean"].items())
            self.log.line(f"final validation Dice: {means}; mean {summary['foreground_mean']['dice']:.4f}")

    def _checkpoint_for_validation(self) -> Path:
        for name in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth"):
            if (self.folder / name).is_file():
                return self.folder / name
        raise NnoccError(f"{self.folder}: no checkpoint to validate; train the fold first")

    def resume(self) -> None:
        """Continue from checkpoint_latest (an unfinished run), else final (a finished one), else best."""
        candidates = (self.folder / "checkpoint_latest.pth", self.folder / "checkpoint_final.pth")
        path = next((p for p in candidates if p.is_file()), None) or latest_resumable(self.folder)
        if path is None:
            self.log.line("--c given but no checkpoint found; starting from scratch")
            return
        self.restore(path)
        self.log.line(f"resumed from {path.name} at epoch {self.state.epoch}")

    def epochs(self, train_loader, val_loader) -> None:
        t = self.run.training
        while self.state.epoch < t.num_epochs:
            started = time.time()
            lr = learning_rate(t, self.progress())
            set_learning_rate(self.state.optimizer, lr, t.initial_lr)
            train_loss = self.train_epoch(train_loader, started)
            val_loss, dice = self.validate_epoch(val_loader)
            self.state.elapsed_seconds += time.time() - started
            self.end_epoch(train_loss, val_loss, dice, lr, time.time() - started)
            if self.state.stopped_by_budget:
                break

    def train_epoch(self, loader, started: float) -> float:
        s, t = self.state, self.run.training
        s.model.train()
        losses = []
        bar = tqdm(range(t.iterations_per_epoch), desc=f"epoch {s.epoch}", leave=False,
                   disable=not (self.ctx.is_main and self.run.settings.show_progress))
        for _ in bar:
            iteration_started = time.perf_counter()
            batch = to_device(next(loader), self.device)
            loss, _ = train_step(s.model, batch, self.loss, s.optimizer, s.scaler, self.amp, t.grad_clip)
            losses.append(loss)
            s.iterations += 1
            if self.cpu_probe is not None and self.cpu_probe.add(time.perf_counter() - iteration_started):
                self.log.line(cpu_speed_advice(self.run, self.cpu_probe.seconds_per_iteration()))
                self.cpu_probe = None
            bar.set_postfix(loss=f"{loss:.4f}")
            self.save_due_snapshots(s.elapsed_seconds + time.time() - started)
            if self.over_budget(started):
                s.stopped_by_budget = True
                break
        return float(self.ctx.mean(torch.tensor(np.mean(losses))).item())

    def validate_epoch(self, loader):
        s, t = self.state, self.run.training
        s.model.eval()
        losses: List[float] = []
        counts: Optional[torch.Tensor] = None
        for _ in range(max(1, t.validation_iterations)):
            batch = to_device(next(loader), self.device)
            loss, c = validation_step(s.model, batch, self.loss, self.amp, self.run.regions,
                                      self.run.config.mise.threshold)
            losses.append(loss)
            counts = c if counts is None else counts + c
        assert counts is not None
        counts = self.ctx.sum(counts)
        return float(self.ctx.mean(torch.tensor(np.mean(losses))).item()), pseudo_dice(counts)

    def end_epoch(self, train_loss: float, val_loss: float, dice: np.ndarray, lr: float, seconds: float) -> None:
        s, t = self.state, self.run.training
        h = s.history
        mean_dice = float(np.nanmean(dice)) if np.isfinite(dice).any() else 0.0
        ema = mean_dice
        if h.ema_pseudo_dice:
            ema = t.ema_pseudo_dice * h.ema_pseudo_dice[-1] + (1 - t.ema_pseudo_dice) * mean_dice
        h.train_loss.append(train_loss)
        h.val_loss.append(val_loss)
        h.pseudo_dice.append([float(d) for d in dice])
        h.ema_pseudo_dice.append(ema)
        h.learning_rate.append(lr)
        h.epoch_seconds.append(seconds)
        dice_text = ", ".join(f"{n} {d:.3f}" for n, d in zip(self.log.class_names, dice))
        self.log.line(f"epoch {s.epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                      f"pseudo Dice [{dice_text}], EMA {ema:.4f}, lr {lr:.2e}, {seconds:.1f} s")
        s.epoch += 1
        if ema > s.best_ema:
            s.best_ema = ema
            self.save("checkpoint_best.pth")
            self.log.line(f"new best EMA pseudo Dice {ema:.4f}: saved checkpoint_best.pth")
        due = s.epoch % t.checkpoint_every == 0 or time.time() - self.last_saved > LATEST_EVERY_SECONDS
        if due or s.stopped_by_budget or s.epoch == t.num_epochs:
            self.save("checkpoint_latest.pth")
            self.last_saved = time.time()
        self.log.plot(h)

    def write_run_files(self) -> None:
        r = self.run
        model_folder = self.folder.parent
        save_json(r.description.to_json(), model_folder / "dataset.json")
        r.plans.save(model_folder / "plans.json")
        if r.paths.fingerprint_file.is_file():
            atomic_copy(r.paths.fingerprint_file, model_folder / "dataset_fingerprint.json")
        save_json({"fold": str(r.settings.fold), "train_cases": r.train_cases, "val_cases": r.val_cases,
                   "training": r.training.__dict__, "device": str(self.device), "world_size": self.ctx.world_size,
                   "data_augmentation_workers": r.settings.num_workers, "seed": r.settings.seed,
                   "time_budget_minutes": r.settings.time_budget_minutes, "torch": torch.__version__,
                   "nnocc": nnocc.__version__, "python": platform.python_version(),
                   "parameters": sum(p.numel() for p in self.network.parameters()),
                   "threads": torch.get_num_threads(), "machine": platform.machine()},
                  self.folder / "debug.json")



