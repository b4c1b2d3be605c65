"""What a person watches during training: a per-epoch log line, training_log.txt and progress.png."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """Per-epoch values; stored inside checkpoints so a resumed run keeps its curves."""
    train_loss: List[float] = field(default_factory=list)
    val_loss: List[float] = field(default_factory=list)
    pseudo_dice: List[List[float]] = field(default_factory=list)   # per output class / region
    ema_pseudo_dice: List[float] = field(default_factory=list)
    learning_rate: List[float] = field(default_factory=list)
    epoch_seconds: List[float] = field(default_factory=list)

    def to_state(self) -> Dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_state(cls, state: Dict[str, list]) -> "TrainingHistory":
        return cls(**{k: list(v) for k, v in state.items()})


class TrainingLogger:
    def __init__(self, folder: Path, class_names: List[str], enabled: bool = True):
        self.folder = folder
        self.class_names = class_names
        self.enabled = enabled

    def line(self, text: str) -> None:
        logger.info(text)
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "training_log.txt", "a", encoding="utf-8") as f:
                f.write(text + "\n")

    def plot(self, history: TrainingHistory) -> None:
        if not self.enabled or not history.train_loss:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = progress_figure(history, self.class_names)
        tmp = self.folder / ".progress.tmp.png"
        fig.savefig(tmp, dpi=80)
        plt.close(fig)
        tmp.replace(self.folder / "progress.png")


def progress_figure(history: TrainingHistory, class_names: List[str]):
    """One panel per quantity, each with its own axis label and legend (no shared twin axes, so a
    legend never sits beside another quantity's scale)."""
    import matplotlib.pyplot as plt

    epochs = np.arange(len(history.train_loss))
    fig, (loss, dice, seconds, lr) = plt.subplots(4, 1, figsize=(10, 14), sharex=True)
    loss.plot(epochs, history.train_loss, label="train loss", color="tab:blue")
    loss.plot(epochs, history.val_loss, label="validation loss", color="tab:red")
    loss.set_ylabel("loss")
    values = np.array(history.pseudo_dice, dtype=np.float64)
    for c, name in enumerate(class_names):
        if values.size:
            dice.plot(epochs, values[:, c], linestyle=":", label=f"pseudo Dice {name}")
    dice.plot(epochs, history.ema_pseudo_dice, color="black", label="pseudo Dice (EMA of mean)")
    dice.set_ylabel("pseudo Dice")
    dice.set_ylim(0, 1)
    seconds.plot(epochs, history.epoch_seconds, color="tab:green", label="epoch time")
    seconds.set_ylabel("seconds per epoch")
    lr.plot(epochs, history.learning_rate, color="tab:orange", label="learning rate")
    lr.set_ylabel("learning rate")
    lr.set_xlabel("epoch")
    for ax in (loss, dice, seconds, lr):
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
