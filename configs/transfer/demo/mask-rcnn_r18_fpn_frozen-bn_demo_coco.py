# CPU demo of the frozen-BN COCO Mask R-CNN protocol (`mixbench pipeline`, synthetic data).
# Changes ONLY backbone depth (ResNet-18), image scale, schedule and data root.
_base_ = '../coco/mask-rcnn_r50_fpn_frozen-bn_1x_coco.py'

data_root = 'data/demo/coco/'
img_scale = (192, 144)  # paper: (1333, 800)
max_epochs = 1  # paper: 12

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512]),  # ResNet-18 stage widths
    # Proposals and sampled RoIs scaled with the image area (192x144 is 1/22 of 1000x600): the RoI head's
    # 12544->1024 FC over mmdet's 512 sampled / 1000 test RoIs per image would dominate a CPU step.
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    # The mask head runs on every kept detection at test time: keep 30 per image (the synthetic images hold 1-4
    # objects; COCO's maxDets=100 default is for up to ~90 objects in a 1333x800 image).
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300), rcnn=dict(max_per_img=30)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,  # 2 shared CPU cores
                        dataset=dict(filter_cfg=dict(min_size=8), pipeline=train_pipeline))
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
# No validation during the one-epoch schedule: mmengine would evaluate the same images again right before the
# runner's own test pass (which produces the run record).
val_dataloader = None
val_cfg = None
val_evaluator = None

# Gradient clipping (mmdet's usual max_norm=35): at this per-image lr a pretrained backbone with frozen BN
# otherwise diverges to NaN within the single epoch (measured: MoCo R18, VOC demo, iteration ~50).
# lr 0.01 at batch 2 on one process (paper: 0.02 at batch 16).
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]  # then constant
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=1))
