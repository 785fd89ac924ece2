# MoCo v2 (Chen et al. 2020): v1 + MLP head, T=0.2, blur augmentation, half-cosine lr over all epochs.
_base_ = "./moco_v1.py"

model = dict(T=0.2, mlp=True)
train_dataloader = dict(dataset=dict(aug="moco_v2"))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=200, T_max=200, eta_min=0.0)]
