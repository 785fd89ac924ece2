"""Checkpoint conversion: public and mixbench ResNet layouts -> torchvision, mmdetection, detectron2, exactly."""

# This folder installs as `mixbench.convert` (pyproject's package-dir). Imported under any other name (the repository
# root on sys.path, `import convert`), it would be a second copy with its own registries: refuse that.
if __name__ != "mixbench.convert":
    raise ImportError(f"import this package as 'mixbench.convert', not {__name__!r} (pip install -e . first)")
