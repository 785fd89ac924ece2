# CPU preset for CMC on the synthetic data: two ResNet50-half on YCbCr at 64 px, memory bank K=1024.
# Another data root: --cfg-options train_dataloader.dataset.root=DIR/imagenet/train
_base_ = ["./_base_/models/cmc.py", "./_base_/synthetic_cpu.py"]

data_root = "data/demo/imagenet/"
model = dict(K=1024)
train_dataloader = dict(num_workers=2, dataset=dict(root=data_root + "train", size=64))
