# CPU demo of the fine-tuned-BN COCO Mask R-CNN protocol.
_base_ = './mask-rcnn_r18_fpn_frozen-bn_demo_coco.py'

model = dict(backbone=_base_.finetune_bn_backbone)
