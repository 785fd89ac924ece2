# Mask R-CNN R50-FPN, COCO, backbone BN fine-tuned (SyncBN; plain BN on one process or CPU, chosen by the runner).
# Same protocol as the frozen-BN config (1333x800, lr 0.02, 12 epochs).
_base_ = './mask-rcnn_r50_fpn_frozen-bn_1x_coco.py'

model = dict(backbone=_base_.finetune_bn_backbone)
