# MoCo v1's ImageNet-1K schedule (Table 6): SGD as MoCo/CMC (sec. 4.1: momentum 0.9, weight decay 1e-4), 200 epochs,
# lr 0.03 at batch 256, x0.1 at epochs 120 and 160. The ImageNet-100 and CPU schedules start from it.
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.03, momentum=0.9, weight_decay=1e-4))
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=200)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[120, 160], gamma=0.1)]
# The lr is quoted for this total batch (8 GPUs x 32); mmengine's Runner rescales it linearly to the batch actually
# used (per-process batch_size x processes), so fewer GPUs keep the per-image lr of the paper.
auto_scale_lr = dict(base_batch_size=256, enable=True)
