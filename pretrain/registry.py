"""Import every module that registers something in mmengine's registries (configs name them via
``custom_imports = dict(imports=['mixbench.pretrain.registry'])``): MixPreprocessor, MoCo, CMC, ImageFolderViews,
MixbenchMetaHook, KNNMonitorHook."""

from mixbench.pretrain import cmc, data, hooks, moco, preprocessor  # noqa: F401
