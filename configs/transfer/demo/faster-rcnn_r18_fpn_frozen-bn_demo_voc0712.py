# CPU demo of the frozen-BN VOC protocol (`mixbench pipeline` without arguments, synthetic data).
# Changes ONLY backbone depth (ResNet-18), image scale, schedule and data root; BN mode, no-norm neck/heads
# and metrics (AP50 + Recall) are inherited from the paper config.
_base_ = '../voc0712/faster-rcnn_r50_fpn_frozen-bn_1x_voc0712.py'

data_root = 'data/demo/VOCdevkit/'
img_scale = (192, 144)  # paper: (1000, 600); the synthetic demo images are ~256x192
max_epochs = 1  # paper: 12 = RepeatDataset(times=3) x 4 epochs; here times=1: one pass over the 200 images

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512]),  # ResNet-18 stage widths
    # Proposals and sampled RoIs scaled with the image area (192x144 is 1/22 of 1000x600): the RoI head's
    # 12544->1024 FC over mmdet's 512 sampled / 1000 test RoIs per image would dominate a CPU step.
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# The synthetic objects are 16-110 px: keep boxes >= 8 px (the base ignores boxes under 32 px at full scale).
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,  # 2 shared CPU cores: no loader processes
    dataset=dict(
        times=1,
        dataset=dict(datasets=[
            dict(_base_.train_dataloader.dataset.dataset.datasets[i], pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8, bbox_min_size=8))
            for i in (0, 1)])))  # VOC2007 and VOC2012 trainval
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
# No validation during the one-epoch schedule: mmengine would evaluate the same images again right before the
# runner's own test pass (which produces the run record).
val_dataloader = None
val_cfg = None
val_evaluator = None

# batch 2 on one process: lr 0.01 (the paper's 0.01 is for batch 16; a higher per-image lr makes the short
# schedule learn), short warm-up, no step within one epoch.
# Gradient clipping (mmdet's usual max_norm=35): at this per-image lr a pretrained backbone with frozen BN
# otherwise diverges to NaN within the single epoch (measured: MoCo R18, VOC demo, iteration ~50).
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]  # then constant
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=1))
