# SGD as MoCo/CMC (sec. 4.1): momentum 0.9, weight decay 1e-4; lr x0.1 at the milestones.
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.03, momentum=0.9, weight_decay=1e-4))
# MoCo v1 on ImageNet-1K: 200 epochs, lr 0.03 at batch 256, x0.1 at epochs 120 and 160.
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=200)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[120, 160], gamma=0.1)]
