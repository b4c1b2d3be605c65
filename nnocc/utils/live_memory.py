"""The peak of live tensor memory while some code runs, counted as it allocates and frees.

Run on the ``meta`` device it costs neither memory nor compute, so a configuration's working set can be
known before anything is built for real.  It counts tensor storages only: an allocator's own slack and
a kernel's scratch space are not tensors.
"""
from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary


class LiveTensorBytes(TorchDispatchMode):
    """``with LiveTensorBytes() as counter: ...`` then ``counter.peak``: the most bytes that storages
    created inside the block held at one time (views share their base's storage and count once; tensors
    made before the block count not at all)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        kwargs = kwargs or {}
        for tensor in tree_leaves((args, kwargs)):
            # made before the block: its views and in-place results allocate nothing
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage() not in self._seen:
                self._seen[tensor.untyped_storage()] = None
        out = func(*args, **kwargs)
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._count(tensor.untyped_storage())
        return out

    def _count(self, storage: torch.UntypedStorage) -> None:
        if storage in self._seen:
            return
        size = storage.nbytes()
        self.live += size
        self.peak = max(self.peak, self.live)
        # a storage's Python object lives as long as the storage does, so this fires when it is freed
        self._seen[storage] = weakref.ref(storage, partial(self._free, size))

    def _free(self, size: int, _storage: object) -> None:
        self.live -= size
