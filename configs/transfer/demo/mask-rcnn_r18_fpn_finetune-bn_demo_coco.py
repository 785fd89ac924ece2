# CPU demo of the fine-tuned-BN COCO Mask R-CNN protocol.
_base_ = './mask-rcnn_r18_fpn_frozen-bn_demo_coco.py'

model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False))
