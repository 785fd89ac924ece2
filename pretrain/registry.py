"""Import every module that registers something in mmengine's registries (configs name them via
``custom_imports = dict(imports=['mixbench.pretrain.registry'])``): MixPreprocessor, MoCo, CMC, ImageFolderViews,
MixbenchMetaHook, KNNMonitorHook, ChannelsLastModel."""

from mixbench.pretrain import channels_last, cmc, data, hooks, moco, preprocessor  # noqa: F401
