# CPU preset for the synthetic data (mixbench.synthetic, preset 'demo'): MoCo v2 with ResNet-18 at 64 px.
#   mixbench demo-data data/demo && mixbench pretrain configs/pretrain/moco_r18_synthetic.py
# Another data root: --cfg-options train_dataloader.dataset.root=DIR/imagenet/train
_base_ = ["./_base_/models/moco_v2.py", "./_base_/synthetic_cpu.py"]

data_root = "data/demo/imagenet/"
model = dict(arch="resnet18", K=1024, m=0.99)
train_dataloader = dict(num_workers=2, dataset=dict(root=data_root + "train", size=64))
optim_wrapper = dict(optimizer=dict(lr=0.06))
