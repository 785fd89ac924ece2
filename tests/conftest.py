"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 'tiny' synthetic data set (seed 0), generated once per test session.

    Returns ``mixbench.synthetic.generate``'s dict: ``{'imagenet': ROOT/imagenet, 'voc': ROOT/VOCdevkit,
    'coco': ROOT/coco}``. Treat it as read-only: every test of the session shares it.
    """
    from mixbench.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), seed=0, preset="tiny")


class _Payload:
    """Unpickling this object creates a folder: the proof that code from a checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def evil_checkpoint(tmp_path: Path):
    """``(path, marker)``: a ResNet-18 state_dict saved with a pickled payload beside it; ``marker`` appears if
    any loader ever runs the payload. The one malicious file every entry point is tested against."""
    import torchvision

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    import torch

    torch.save({"state_dict": torchvision.models.resnet18().state_dict(), "x": _Payload(marker)}, path)
    return path, marker
