# Runtime and schedule of the CPU presets on the synthetic data (mixbench.synthetic, preset 'demo'), shared by
# the MoCo and CMC presets; each preset adds its method's model and data base and states its own deltas.
_base_ = ["./default_runtime.py", "./schedule_200e_in1k.py"]

train_cfg = dict(max_epochs=5)
# No `end`/`T_max`: mmengine's Runner sets `end` to train_cfg.max_epochs when it builds the scheduler and the
# cosine takes T_max = end - begin, so `--cfg-options train_cfg.max_epochs=8` moves the whole schedule (a value
# written here would stay at 5 and leave the lr flat after epoch 5).
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, begin=0)]
# kNN top-1 on <root>/../val before training (random init) and after the last epoch, whatever max_epochs is
# (interval=None: at the last epoch only).
custom_hooks = [
    dict(type="MixbenchMetaHook"),
    dict(type="KNNMonitorHook", interval=None, size=64, num_workers=0, before_train=True),
]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=2))
# torch threads on CPU (pretrain.train): small CPU steps run fastest on one thread (OpenMP spin-waits on shared
# cores); raise it on an idle many-core machine.
cpu_threads = 1
# The presets state their lr for their own batch on one process: no rescaling to the paper's batch of 256.
auto_scale_lr = dict(enable=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
