# MoCo v2 + G + R on ImageNet-1K for GPUs, with the fast data path: moco-gr_r50_200e_in1k (Table 6) plus
# - MoCo v2 (Chen et al. 2020): MLP head, T=0.2, blur in the augmentation, cosine lr;
# - device views: workers only read the JPEG files, nvjpeg decodes and the views are made on the GPU in batch
#   (the three keys: dataset worker_stage/aug, collate_fn, data_preprocessor.device_views);
# - bf16 autocast (mmengine AmpOptimWrapper) and channels_last views (cuDNN then runs the convolutions
#   channels_last; the weights follow the input's memory format).
# The same recipe on the reference PIL loader: --cfg-options train_dataloader.dataset.worker_stage=augment
#   train_dataloader.dataset.aug=moco_v2 train_dataloader.collate_fn.type=default_collate
#   model.data_preprocessor.device_views=None
_base_ = "./moco-gr_r50_200e_in1k.py"

model = dict(
    T=0.2,
    mlp=True,
    data_preprocessor=dict(device_views=dict(aug="moco_v2", size=224, n_views=2, channels_last=True)),
)
train_dataloader = dict(
    num_workers=8,  # reading only: a few workers per GPU suffice (the PIL path needs ~44 cores per fast GPU)
    collate_fn=dict(type="image_list_collate"),
    dataset=dict(aug=None, worker_stage="read"),
)
optim_wrapper = dict(type="AmpOptimWrapper", dtype="bfloat16")
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=200, T_max=200)]
