# CPU demo of the frozen-BN COCO RetinaNet protocol (`mixbench pipeline`, synthetic data).
# The paper config with ONLY the demo deltas of _base_/cpu_demo.py (backbone depth, widths, GroupNorm head towers,
# 6-way classifier over the synthetic categories, scale, 3-epoch step schedule, lr 0.005 and clipping, loaders, no
# validation), plus: test score threshold 0 (keep the top 100 per image), so the AP of a head still close to its 0.01
# focal-loss prior is measured rather than empty; it does not change the model.
_base_ = ['../coco/retinanet_r50_fpn_frozen-bn_1x_coco.py', './_base_/cpu_demo.py']

data_root = 'data/demo/coco/'
img_scale = _base_.demo_img_scale
max_epochs = _base_.demo_retina_max_epochs  # paper: 12

model = dict(backbone=dict(depth=18), neck=_base_.demo_neck, bbox_head=_base_.demo_retina_head,
             test_cfg=dict(score_thr=0.0))
train_dataloader = dict(**_base_.demo_loader, dataset=dict(metainfo=_base_.demo_coco_metainfo,
                                                           filter_cfg=dict(min_size=8),
                                                           pipeline=_base_.demo_train_pipeline))
test_dataloader = dict(**_base_.demo_test_loader,
                       dataset=dict(metainfo=_base_.demo_coco_metainfo, pipeline=_base_.demo_test_pipeline))
val_dataloader = val_cfg = val_evaluator = None

optim_wrapper, param_scheduler, train_cfg = _base_.demo_retina_schedule
default_hooks = _base_.demo_default_hooks
