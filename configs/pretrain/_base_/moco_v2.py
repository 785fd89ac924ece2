# MoCo v2 (Chen et al. 2020): v1 + MLP head, T=0.2, blur augmentation, half-cosine lr over all epochs.
_base_ = ["./models/moco_v2.py", "./default_runtime.py", "./schedule_sgd_step.py"]

param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=200, T_max=200, eta_min=0.0)]
