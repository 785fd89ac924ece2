# Linear evaluation on ImageNet-100, the paper's protocol (sec. 4.2): frozen encoder, linear head,
# SGD lr 10, momentum 0.9, weight decay 0, 60 epochs, lr x0.1 at epochs 30, 40 and 50; single centre crop,
# top-1. The frozen encoder comes from the command line, never from a config:
#   mixbench linear THIS_FILE --checkpoint CKPT      (any checkpoint layout the converter reads, or random:<arch>)
custom_imports = dict(imports=["mixbench.pretrain.linear"], allow_failed_imports=False)

data_root = "data/imagenet"  # ImageNet-style ROOT/{train,val}/<wnid>/*.JPEG (full ImageNet-1K is fine)
classes = "imagenet100"  # the paper's 100 wnids (pretrain.imagenet100); labels follow that order
crop_size = 224
resize_size = 256  # val: Resize(256) + CenterCrop(224), as MoCo's main_lincls

model = dict(type="LinearClassifier", num_classes=100)

train_pipeline = [
    dict(type="RandomResizedCrop", size=crop_size, antialias=True),
    dict(type="RandomHorizontalFlip"),
]
val_pipeline = [
    dict(type="Resize", size=resize_size, antialias=True),
    dict(type="CenterCrop", size=crop_size),
]
# Total batch 256 (MoCo's 8 GPUs x 32). One process holds all 256; auto_scale_lr keeps lr / batch = 10 / 256
# if the per-process batch or the number of processes changes (8 processes x 32 -> lr 10 again).
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="eval_collate"),
    dataset=dict(
        type="ImageFolderViews", root=data_root + "/train", aug=None, n_views=1, classes=classes,
        pipeline=train_pipeline,
    ),
)
# The same loader, unshuffled, over ROOT/val with the val pipeline.
val_dataloader = dict(
    train_dataloader,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(train_dataloader["dataset"], root=data_root + "/val", pipeline=val_pipeline),
)
val_evaluator = dict(type="TopKAccuracy", topk=(1, 5))
auto_scale_lr = dict(base_batch_size=256, enable=True)

optim_wrapper = dict(optimizer=dict(type="SGD", lr=10.0, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[30, 40, 50], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=10)  # the last epoch is always validated
val_cfg = dict()

default_hooks = dict(
    checkpoint=dict(type="CheckpointHook", interval=10, max_keep_ckpts=1, save_last=True),
    logger=dict(type="LoggerHook", interval=50),
)
env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0)
log_level = "INFO"
