# Runtime shared by every pretraining config (mmengine registries only; pretrain.registry adds ours).
default_scope = "mmengine"
custom_imports = dict(imports=["mixbench.pretrain.registry"], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),  # log lines carry the ETA
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# Writes checkpoint['meta']['mixbench'] (method, arch, input statistics, mixture) for the converter.
custom_hooks = [dict(type="MixbenchMetaHook")]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
# MoCo relies on shuffle-BN across processes instead of SyncBN; set sync_bn='torch' to convert on GPUs.
sync_bn = None
vis_backends = [dict(type="LocalVisBackend")]  # add dict(type='TensorboardVisBackend') for tensorboard
visualizer = dict(type="Visualizer", vis_backends=vis_backends)
log_processor = dict(window_size=50, by_epoch=True)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
