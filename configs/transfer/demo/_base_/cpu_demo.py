# What shrinks a paper detection protocol to the CPU demo (`mixbench pipeline`, synthetic data, 2 CPU cores).
# Every demo leaf config inherits its paper config AND this file, and takes from here, by reference
# (`_base_.demo_*`), exactly these deltas. Names are prefixed `demo_` because mmengine refuses a key defined in two
# bases; they are plain variables that no mmdet component reads. Each delta and why:
#
#   backbone     ResNet-18 (paper: ResNet-50), FPN in_channels its stage widths: a CPU step at this scale.
#   widths       FPN and heads 128 wide, RoI box FCs 512, 2 mask convs (paper: 256, 1024, 4): the new layers, not
#                the backbone, dominate a CPU step; narrower costs absolute AP but keeps the backbone comparison.
#   scale        192x144, keep ratio (paper: VOC 1000x600, COCO 1333x800): the demo images are ~256x192.
#   schedule     1 epoch (paper: 12), constant lr after a 50-iteration linear warm-up: a CPU budget.
#   lr, batch    lr 0.0025 at batch 2 on one process (paper: 0.01 VOC / 0.02 COCO at batch 16): twice the VOC lr
#                scaled linearly to the batch. Measured on the demo's Faster R-CNN (AP50 per seed): at 0.01 MoCo
#                gave 49, 13, 55 against random init's 18, 32, 36; at 0.005 random init reached 48 on one seed of
#                three, within MoCo+mix's 47-60; at 0.0025 (4 seeds) MoCo 37-56, MoCo+mix 52-64, random 12-31.
#   clipping     max_norm 35 (mmdet's usual): at 4x this lr a pretrained frozen-BN backbone diverged without.
#   RoIs         300 proposals, 128 sampled RoIs (mmdet: 1000 / 512), scaled down with the image area; fewer lose
#                the signal.
#   loaders      no worker processes (2 shared cores); boxes >= 8 px kept (the synthetic objects are 12-80 px here).
#   RetinaNet    GroupNorm in the head's two towers (as FCOS/ATSS): unnormalised towers barely leave the focal-loss
#                prior in a CPU budget. 3 epochs, lr x0.1 after the second: the step settles constant-lr noise.
#                lr 0.005, the value its demo runs were set at. A 6-way classifier over the categories
#                the synthetic COCO holds: the 80-way output conv would be a fifth of the step.
#   validation   none during the short schedules: the runner's own test pass (the run record) is the evaluation.
#   logging      every 20 iterations; one checkpoint kept.
demo_img_scale = (192, 144)
demo_max_epochs = 1
demo_width = 128
demo_neck = dict(in_channels=[64, 128, 256, 512], out_channels=demo_width)
demo_rpn_head = dict(in_channels=demo_width, feat_channels=demo_width)
demo_roi_head = dict(bbox_roi_extractor=dict(out_channels=demo_width),
                     bbox_head=dict(in_channels=demo_width, fc_out_channels=512))
demo_mask_roi_head = dict(demo_roi_head, mask_roi_extractor=dict(out_channels=demo_width),
                          mask_head=dict(num_convs=2, in_channels=demo_width, conv_out_channels=demo_width))
demo_loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
demo_test_loader = dict(num_workers=0, persistent_workers=False)
demo_optim_wrapper = dict(optimizer=dict(lr=0.0025), clip_grad=dict(max_norm=35, norm_type=2))
demo_param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
demo_default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=1))
demo_rcnn_train_cfg = dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128)))
demo_rpn_test_cfg = dict(nms_pre=1000, max_per_img=300)
demo_coco_classes = ('person', 'car', 'bird', 'cat', 'dog', 'bottle')  # mixbench.synthetic.COCO_CLASSES_USED
demo_coco_metainfo = dict(classes=demo_coco_classes)
# `_delete_`: the paper base has norm_cfg=None, which a dict cannot be merged into.
demo_retina_head = dict(num_classes=len(demo_coco_classes), in_channels=demo_width, feat_channels=demo_width,
                        norm_cfg=dict(_delete_=True, type='GN', num_groups=32, requires_grad=True))
demo_retina_max_epochs = 3
demo_retina_optim_wrapper = dict(demo_optim_wrapper, optimizer=dict(lr=0.005))
demo_retina_param_scheduler = demo_param_scheduler + [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=demo_retina_max_epochs, milestones=[2], gamma=0.1)]
# Each schedule as one choice, as a leaf takes it: `optim_wrapper, param_scheduler, train_cfg = _base_.demo_schedule`.
demo_schedule = (demo_optim_wrapper, demo_param_scheduler, dict(max_epochs=demo_max_epochs))
demo_retina_schedule = (demo_retina_optim_wrapper, demo_retina_param_scheduler, dict(max_epochs=demo_retina_max_epochs))

demo_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=demo_img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
demo_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=demo_img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# Mask R-CNN: the same, loading the instance masks too.
demo_train_pipeline_mask = [
    dict(step, with_mask=True) if step['type'] == 'LoadAnnotations' else step for step in demo_train_pipeline]
demo_test_pipeline_mask = [
    dict(step, with_mask=True) if step['type'] == 'LoadAnnotations' else step for step in demo_test_pipeline]
