"""Shared pytest fixtures."""

from __future__ import annotations

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
