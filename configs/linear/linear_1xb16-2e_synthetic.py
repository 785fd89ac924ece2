# CPU preset on the synthetic data (`mixbench demo-data ROOT`): the ImageNet-100 protocol with only the data
# root, the epochs, the batch (and, for 2 CPU cores, crop sizes, workers and log interval) changed.
_base_ = ["./linear_1xb256-60e_in100.py"]

data_root = "data/demo/imagenet"
classes = None  # the synthetic tree holds a prefix of the ImageNet-100 wnids: use its class folders
crop_size = 64
resize_size = 73  # keeps 224 / 256 = 0.875 of the side for the centre crop
model = dict(num_classes=None)  # counted from ROOT/train by `mixbench linear`

# The protocol's pipelines (RandomResizedCrop + flip; Resize + CenterCrop) at these sizes.
train_pipeline = [dict(_base_.train_pipeline[0], size=crop_size), _base_.train_pipeline[1]]
val_pipeline = [dict(_base_.val_pipeline[0], size=resize_size), dict(_base_.val_pipeline[1], size=crop_size)]
_loader = dict(batch_size=16, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    **_loader, dataset=dict(root=data_root + "/train", classes=classes, pipeline=train_pipeline)
)
val_dataloader = dict(**_loader, dataset=dict(root=data_root + "/val", classes=classes, pipeline=val_pipeline))

train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
