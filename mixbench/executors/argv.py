"""The ``mixbench`` command lines an executor runs: the launcher a job's processes start with, and what a requeued
job runs to continue where it stopped."""

from __future__ import annotations

# Sub-commands whose processes join a process group (``--launcher``); the others run as one process.
DISTRIBUTED = ("pretrain", "transfer", "evaluate")


def with_launcher(argv: list[str], launcher: str) -> list[str]:
    """``argv`` with ``--launcher launcher``, placed before ``--cfg-options`` (whose values run to the end)."""
    if argv[0] not in DISTRIBUTED:
        raise ValueError(f"mixbench {argv[0]} runs as one process; only {', '.join(DISTRIBUTED)} take a launcher")
    if "--launcher" in argv:
        i = argv.index("--launcher")
        return [*argv[:i + 1], launcher, *argv[i + 2:]]
    i = argv.index("--cfg-options") if "--cfg-options" in argv else len(argv)
    return [*argv[:i], "--launcher", launcher, *argv[i:]]


def resume_argv(argv: list[str]) -> list[str]:
    """What a requeued job runs: the same run continued from its last checkpoint, never started over.

    ``--force`` (start over) is dropped; ``pretrain`` gets ``--resume`` (``transfer`` resumes its run key's
    checkpoints by itself).
    """
    cut = argv.index("--cfg-options") if "--cfg-options" in argv else len(argv)
    head = [a for a in argv[:cut] if a != "--force"]
    if head[0] == "pretrain" and "--resume" not in head:
        head.append("--resume")
    return [*head, *argv[cut:]]
