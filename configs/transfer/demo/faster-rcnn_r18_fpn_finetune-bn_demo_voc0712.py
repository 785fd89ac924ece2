# CPU demo of the fine-tuned-BN VOC protocol: the frozen-BN demo with the BN mode of the paper's finetune config.
_base_ = './faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py'

model = dict(backbone=_base_.finetune_bn_backbone)
