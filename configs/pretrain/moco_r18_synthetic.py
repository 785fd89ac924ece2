# CPU preset for the synthetic data (transfer.synthetic, preset 'demo'): MoCo v2 with ResNet-18 at 64 px.
#   mixbench demo-data data/demo && mixbench pretrain configs/pretrain/moco_r18_synthetic.py
# Another data root: --cfg-options train_dataloader.dataset.root=DIR/imagenet/train
_base_ = "./_base_/moco_v2.py"

data_root = "data/demo/imagenet/"
model = dict(arch="resnet18", K=1024, m=0.99, T=0.2)
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(root=data_root + "train", size=64),
)
max_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=0.06))
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
