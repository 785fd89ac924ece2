# MoCo v2 (Chen et al. 2020), model and data only: v1 + MLP head, T=0.2, blur augmentation.
_base_ = "./moco_v1.py"

model = dict(T=0.2, mlp=True)
train_dataloader = dict(dataset=dict(aug="moco_v2"))
