# CPU preset for CMC on the synthetic data: two ResNet50-half on YCbCr at 64 px, memory bank K=1024.
# Another data root: --cfg-options train_dataloader.dataset.root=DIR/imagenet/train
_base_ = "./_base_/cmc.py"

data_root = "data/demo/imagenet/"
model = dict(K=1024, T=0.07)
train_dataloader = dict(batch_size=32, num_workers=2, dataset=dict(root=data_root + "train", size=64))
max_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=0.03))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs)]
# kNN top-1 (k=200, T=0.1) on <root>/../val before training (random init) and after the last epoch.
custom_hooks = [
    dict(type="MixbenchMetaHook"),
    dict(type="KNNMonitorHook", interval=max_epochs, size=64, num_workers=0, before_train=True),
]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=2))
# torch threads on CPU (pretrain.train): on 2 cores shared with other jobs one thread was ~7x faster than two
# (measured: one demo epoch 9-10 s vs 70 s, OpenMP spin-waits); raise it on an idle many-core machine.
cpu_threads = 1
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
