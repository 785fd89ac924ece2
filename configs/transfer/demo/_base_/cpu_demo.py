# What shrinks a paper detection protocol to the CPU demo (`mixbench pipeline`, synthetic data, 2 CPU cores).
# Every demo leaf config inherits its paper config AND this file, and takes from here, by reference
# (`_base_.demo_*`), exactly these deltas. Names are prefixed `demo_` because mmengine refuses a key defined in two
# bases; they are plain variables that no mmdet component reads.
#
#   backbone      ResNet-18 (paper: ResNet-50); FPN in_channels = ResNet-18 stage widths
#   widths        FPN and every head 128 channels wide, RoI box FCs 512, 2 mask-head convs (paper: 256, 1024, 4).
#                 The new layers, not the backbone, dominate a CPU step at this scale; halving them halves a run
#                 (measured on 2 idle cores, 4 mask convs: Mask R-CNN 260 -> 101 s, Faster R-CNN 153 -> 73 s,
#                 RetinaNet 0.84 -> 0.42 s/iteration). It costs absolute AP (VOC MoCo AP50 66.9 -> 34.5) but keeps
#                 the backbone comparison (VOC random init 30.6 -> 7.4; MoCo 46.6 with another seed)
#   scale         192x144, keep ratio (paper: VOC 1000x600, COCO 1333x800); the demo images are ~256x192
#   schedule      1 epoch (paper: 12), constant lr after a 50-iteration linear warm-up, no lr step
#   lr, batch     lr 0.01 at batch 2 on one process (paper: 0.01 VOC / 0.02 COCO at batch 16)
#   clipping      max_norm 35 (mmdet's usual): at this per-image lr a pretrained backbone with frozen BN otherwise
#                 diverges to NaN within the epoch (measured: MoCo R18, VOC demo, iteration ~50)
#   RoIs          proposals and sampled RoIs scaled down with the image area (192x144 is 1/22 of 1000x600): the RoI
#                 heads' FC over mmdet's 512 sampled / 1000 test RoIs per image would dominate a CPU step: 300
#                 proposals, 128 sampled RoIs (measured on 2 idle cores: 100 / 64 cut a Mask R-CNN run from
#                 244-276 s to 164-180 s but cost most of the signal, VOC MoCo AP50 to 42.6, Mask R-CNN MoCo box AP
#                 to 3.4, below random init)
#   loaders       no worker processes (2 shared cores), boxes >= 8 px kept (the synthetic objects are 12-80 px
#                 at this scale; the bases drop boxes < 32 px at full scale)
#   RetinaNet     GroupNorm in the two 4-conv towers of the head (as FCOS/ATSS do; detectron2's RETINANET.NORM), 3
#                 epochs with the lr x0.1 after the second, lr 0.005 (half the demo's two-stage lr, as mmdet's
#                 RetinaNet 1x runs half its Faster R-CNN lr), and a 6-way classifier over the 6 categories the
#                 synthetic COCO holds. The paper's unnormalised towers, initialised at std 0.01, barely leave the
#                 0.01 focal-loss prior in a CPU budget (measured, MoCo R18: loss_cls 1.13 -> 1.09 over 320
#                 iterations, AP50 0.1-5); with GN it falls to ~0.56 in 160, and the step settles the constant-lr
#                 noise (loss_cls rose again in a 5-epoch constant-lr run). The 3x3 output conv over 80 classes is a
#                 fifth of the step (0.46 -> 0.37 s/iteration with 6); the COCO metric averages over the categories
#                 with ground truth either way, and all 100 kept detections per image go to real categories. The neck
#                 stays BN-free. Measured (2 idle cores, AP50 MoCo / random init, seed 0): 80 classes, lr 0.01,
#                 2 epochs 10.5 / 10.0; 3 epochs with the step 14.6 / 12.7; 6 classes: lr 0.01 19.9 / 12.4 (seed 1:
#                 11.1 / 11.8), lr 0.005 32.4 / 17.6 (seed 1: 10.9 / 10.9), ~97 s a run. Seeds move it a lot.
#   validation    none during the short schedules: the runner's own test pass (the run record) is the evaluation
#   logging       every 20 iterations; one checkpoint kept
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
demo_optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
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
