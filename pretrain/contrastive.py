"""What MoCo and CMC share as mmengine models: the ``forward`` modes and the view features are taken from."""

from __future__ import annotations

import torch
from mmengine.model import BaseModel


class ContrastiveModel(BaseModel):
    """A contrastive pretraining method as an mmengine model.

    ``mode='loss'`` trains (:meth:`loss`); ``'tensor'`` and ``'predict'`` return the encoder features
    (:meth:`extract_feat`) that linear evaluation and the kNN monitor read.
    """

    def forward(self, inputs, data_samples=None, mode: str = "loss"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode in ("tensor", "predict"):
            return self.extract_feat(inputs)
        raise ValueError(f"unknown mode {mode!r}; {type(self).__name__} supports 'loss', 'tensor' and 'predict'")

    def loss(self, inputs: list[torch.Tensor], data_samples: dict | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def extract_feat(self, inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def first_view(inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """The batch features are taken from: the first view while training (a list of views), else the input."""
        return inputs[0] if isinstance(inputs, (list, tuple)) else inputs
