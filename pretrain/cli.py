"""Sub-commands of the pretraining stage: ``pretrain`` (pretrain.train) and the evaluations (pretrain.eval_cli)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from pretrain.eval_cli import register as register_eval
    from pretrain.train_cli import register as register_train

    register_train(sub)
    register_eval(sub)
