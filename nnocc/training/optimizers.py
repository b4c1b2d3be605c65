"""The optimisers a plan can name: AdamW (nnU-Net, seed 000) and Lookahead over RAdam (OSS-Net).

Each parameter group keeps the learning rate the architecture gave it as ``base_lr``; the
schedule scales every group by the same factor, so an architecture's faster group (OSS-Net's
Pade activations at 1e-2) keeps its ratio to the rest.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List

import torch

from nnocc.planning.plans import TrainingPlan

OPTIMIZERS = ("adamw", "lookahead_radam")


class Lookahead(torch.optim.Optimizer):
    """Zhang et al. 2019: every ``k`` steps of the inner optimiser, the slow weights move ``alpha`` of
    the way to the fast ones and the fast weights restart from there (k = 5, alpha = 0.8 in OSS-Net)."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.8):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.steps = 0
        self.slow: Dict[torch.nn.Parameter, torch.Tensor] = {}
        self.defaults = inner.defaults
        self.state = defaultdict(dict)

    @property
    def param_groups(self) -> List[Dict[str, Any]]:  # type: ignore[override]
        """The inner optimiser's groups (also after it loads a state, which replaces them), so that a
        schedule setting group["lr"] reaches it."""
        return self.inner.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.inner.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group in self.param_groups:
                for p in group["params"]:
                    slow = self.slow.setdefault(p, p.detach().clone())
                    slow.add_(p.detach() - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> Dict[str, Any]:
        index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {"inner": self.inner.state_dict(), "steps": self.steps,
                "slow": {index[p]: t for p, t in self.slow.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.steps = int(state["steps"])
        params = [p for g in self.param_groups for p in g["params"]]
        self.slow = {params[int(i)]: t.to(params[int(i)].device) for i, t in state["slow"].items()}


def make_optimizer(groups: List[Dict[str, Any]], plan: TrainingPlan) -> torch.optim.Optimizer:
    for group in groups:
        group["base_lr"] = group["lr"]
    if plan.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=plan.initial_lr, weight_decay=plan.weight_decay)
    if plan.optimizer == "lookahead_radam":
        return Lookahead(torch.optim.RAdam(groups, lr=plan.initial_lr, weight_decay=plan.weight_decay))
    raise ValueError(f"optimizer {plan.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float, initial_lr: float) -> None:
    """The schedule's rate for the main group; other groups keep their ratio to it.  A group restored
    from a checkpoint written before groups had their own rates has no ``base_lr``: it had the plan's."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", initial_lr) * lr / initial_lr
