# Table 5, MoCo row 1 (73.4%): MoCo (CMC's re-implementation, v1 head) on ImageNet-100, 240 epochs at batch 128
# (schedule_240e_in100), K=16384 and m=0.99 (sec. 4.1).
_base_ = ["./_base_/models/moco_v1.py", "./_base_/default_runtime.py", "./_base_/schedule_240e_in100.py"]

model = dict(K=16384, m=0.99)
# Subset folder: pretrain.data.build_imagenet100('IMAGENET/train', 'data/imagenet100/train').
data_root = "data/imagenet100/"
train_dataloader = dict(dataset=dict(root=data_root + "train"))
