"""Detection transfer: mmdet configs and runner (Faster R-CNN VOC, RetinaNet/Mask R-CNN COCO), records, tables."""

# This folder installs as `mixbench.transfer` (pyproject's package-dir). Imported under any other name (the repository
# root on sys.path, `import transfer`), it would be a second copy with its own registries: refuse that.
if __name__ != "mixbench.transfer":
    raise ImportError(f"import this package as 'mixbench.transfer', not {__name__!r} (pip install -e . first)")
