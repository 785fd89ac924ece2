# CPU demo of the frozen-BN VOC protocol (`mixbench pipeline` without arguments, synthetic data).
# The paper config with ONLY the demo deltas of _base_/cpu_demo.py (backbone depth, widths, scale, schedule, lr and
# clipping, RoI counts, loaders, no validation); BN mode, no-norm neck/heads and metrics (AP50 + Recall) are the
# paper's.
_base_ = ['../voc0712/faster-rcnn_r50_fpn_frozen-bn_1x_voc0712.py', './_base_/cpu_demo.py']

data_root = 'data/demo/VOCdevkit/'
img_scale = _base_.demo_img_scale
max_epochs = _base_.demo_max_epochs  # paper: 12 = RepeatDataset(times=3) x 4 epochs; here times=1: one pass

model = dict(backbone=dict(depth=18), neck=_base_.demo_neck, rpn_head=_base_.demo_rpn_head,
             roi_head=_base_.demo_roi_head, train_cfg=_base_.demo_rcnn_train_cfg,
             test_cfg=dict(rpn=_base_.demo_rpn_test_cfg))
train_dataloader = dict(
    **_base_.demo_loader,
    dataset=dict(
        times=1,
        dataset=dict(datasets=[
            dict(_base_.train_dataloader.dataset.dataset.datasets[i], pipeline=_base_.demo_train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8, bbox_min_size=8))
            for i in (0, 1)])))  # VOC2007 and VOC2012 trainval
test_dataloader = dict(**_base_.demo_test_loader, dataset=dict(pipeline=_base_.demo_test_pipeline))
val_dataloader = val_cfg = val_evaluator = None

optim_wrapper, param_scheduler, train_cfg = _base_.demo_schedule
default_hooks = _base_.demo_default_hooks
