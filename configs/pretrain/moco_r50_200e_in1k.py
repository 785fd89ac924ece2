# Table 6, MoCo R50 (59.5%): ImageNet-1K, 200 epochs, batch 256 (8 GPUs x 32), lr 0.03 x0.1 at 120/160,
# K=65536, m=0.999, T=0.07. Table 7/8's detection baselines use K=16384: --cfg-options model.K=16384.
_base_ = ["./_base_/models/moco_v1.py", "./_base_/default_runtime.py", "./_base_/schedule_sgd_step.py"]

data_root = "data/imagenet/"
train_dataloader = dict(batch_size=32, dataset=dict(root=data_root + "train"))
model = dict(K=65536, m=0.999, T=0.07)
