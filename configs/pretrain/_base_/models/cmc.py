# CMC (Tian et al. 2019), model and data only, YCbCr: L and CbCr into two half-width ResNet-50, Softmax-CE,
# memory bank of K negatives; one crop per image (both views come from it), crop + flip augmentation.
data_root = "data/imagenet/"
model = dict(
    type="CMC",
    n_data=None,  # filled from the dataset by pretrain.train
    arch="resnet50",
    width=0.5,
    dim=128,
    K=16384,
    T=0.07,
    memory_momentum=0.5,
    loss="softmax",
    # mixtures: add global_mix=dict(n=, p=) and/or region_mix=dict(n=, p=, lambda_decay=)
    data_preprocessor=dict(type="MixPreprocessor", color_space="ycbcr"),
)
train_dataloader = dict(
    batch_size=32,  # per process
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="ImageFolderViews", root=data_root + "train", aug="cmc", size=224, n_views=1),
)
