# CPU demo of the fine-tuned-BN COCO RetinaNet protocol.
_base_ = './retinanet_r18_fpn_frozen-bn_demo_coco.py'

model = dict(backbone=_base_.finetune_bn_backbone)
