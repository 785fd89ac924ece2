"""Self-supervised pretraining: MoCo v1/v2 and CMC with the paper's global (eq. 3) and region (eqs. 4-5) mixtures,
linear evaluation, the kNN monitor and the flatness analysis (Fig. 5)."""

# This folder installs as `mixbench.pretrain` (pyproject's package-dir). Imported under any other name (the repository
# root on sys.path, `import pretrain`), it would be a second copy with its own registries: refuse that.
if __name__ != "mixbench.pretrain":
    raise ImportError(f"import this package as 'mixbench.pretrain', not {__name__!r} (pip install -e . first)")
