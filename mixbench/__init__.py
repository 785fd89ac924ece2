"""mixbench: image-mixture self-supervised pretraining and its transfer to detection, as one installable suite.

Layers (each imports only the ones below it; ``tests/test_layout.py`` checks this):

* ``mixbench.base``: atomic I/O, safe (weights-only) loading, launch helpers, colour statistics, the ResNet table,
  config lookup. Needs torch at most.
* ``mixbench.pretrain`` (MoCo/CMC, mixtures, linear/kNN/flatness) and ``mixbench.convert`` (checkpoint layouts ->
  torchvision/mmdet/detectron2): never each other.
* ``mixbench.transfer``: mmdet configs, runner, records and tables; the only importer of mmdet/mmcv.
* this package's top modules: the ``mixbench`` command (``cli``), ``doctor``, synthetic data (``synthetic``),
  evaluation of checkpoint files (``evaluate``) and the end-to-end ``pipeline``.
"""

__version__ = "0.2.0"  # the one place it is written: pyproject.toml reads it (dynamic version)
