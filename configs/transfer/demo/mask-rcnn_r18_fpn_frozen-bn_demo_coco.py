# CPU demo of the frozen-BN COCO Mask R-CNN protocol (`mixbench pipeline`, synthetic data).
# The paper config with ONLY the demo deltas of _base_/cpu_demo.py (backbone depth, widths, scale, schedule, lr and
# clipping, RoI counts, loaders, no validation), plus: at most 30 detections per image at test time (the mask head
# runs on every kept detection; the synthetic images hold 1-4 objects, COCO's 100 is for up to ~90 objects).
_base_ = ['../coco/mask-rcnn_r50_fpn_frozen-bn_1x_coco.py', './_base_/cpu_demo.py']

data_root = 'data/demo/coco/'
img_scale = _base_.demo_img_scale
max_epochs = _base_.demo_max_epochs  # paper: 12

model = dict(backbone=dict(depth=18), neck=_base_.demo_neck, rpn_head=_base_.demo_rpn_head,
             roi_head=_base_.demo_mask_roi_head, train_cfg=_base_.demo_rcnn_train_cfg,
             test_cfg=dict(rpn=_base_.demo_rpn_test_cfg, rcnn=dict(max_per_img=30)))
train_dataloader = dict(**_base_.demo_loader,
                        dataset=dict(filter_cfg=dict(min_size=8), pipeline=_base_.demo_train_pipeline_mask))
test_dataloader = dict(**_base_.demo_test_loader, dataset=dict(pipeline=_base_.demo_test_pipeline_mask))
val_dataloader = val_cfg = val_evaluator = None

optim_wrapper, param_scheduler, train_cfg = _base_.demo_schedule
default_hooks = _base_.demo_default_hooks
