# MoCo v1 (He et al. 2019), model and data only: ResNet-50, linear head, K=65536, m=0.999, T=0.07, v1
# augmentation. configs/pretrain/moco_r50_200e_in1k.py adds the runtime and schedule bases: the full recipe.
data_root = "data/imagenet/"  # ImageNet folder with train/<wnid>/*.JPEG; override per config or --cfg-options
model = dict(
    type="MoCo",
    arch="resnet50",
    dim=128,
    K=65536,
    m=0.999,
    T=0.07,
    mlp=False,
    shuffle_bn=True,
    # mixtures: add global_mix=dict(n=, p=) and/or region_mix=dict(n=, p=, lambda_decay=)
    data_preprocessor=dict(type="MixPreprocessor", color_space="rgb"),
)
train_dataloader = dict(
    batch_size=32,  # per process: 8 GPUs x 32 = 256
    num_workers=8,
    persistent_workers=True,
    drop_last=True,  # the queue takes whole batches
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="ImageFolderViews", root=data_root + "train", aug="moco_v1", size=224, n_views=2),
)
