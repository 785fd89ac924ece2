# MoCo v1 (He et al. 2019): ResNet-50, linear head, K=65536, m=0.999, T=0.07, v1 augmentation, step lr.
_base_ = ["./models/moco_v1.py", "./default_runtime.py", "./schedule_sgd_step.py"]
