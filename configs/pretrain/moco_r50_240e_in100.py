# Table 5, MoCo row 1 (73.4%): MoCo (CMC's re-implementation, v1 head) on ImageNet-100, 240 epochs,
# batch 128, K=16384, m=0.99 (sec. 4.1), T=0.07, lr 0.03.
_base_ = "./_base_/moco_v1.py"

model = dict(K=16384, m=0.99, T=0.07)
# ImageNet-100 (sec. 4.1): batch 128 = 4 GPUs x 32, lr 0.03 (CMC's code base, which the paper's MoCo
# re-implements), x0.1 at 120/160/200 of 240 epochs (CMC's schedule).
# Subset folder: pretrain.data.build_imagenet100('IMAGENET/train', 'data/imagenet100/train').
data_root = "data/imagenet100/"
num_gpus = 4
train_dataloader = dict(batch_size=32, dataset=dict(root=data_root + "train"))
optim_wrapper = dict(optimizer=dict(lr=0.03))
train_cfg = dict(max_epochs=240)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[120, 160, 200], gamma=0.1)]
