# Mask R-CNN R50-FPN, COCO train2017 -> val2017, backbone BN frozen (paper Table 8b).
#
# Deltas only; the protocol is the mmdet 1x base: scale 1333x800 (keep ratio), SGD lr 0.02, 12 epochs,
# lr steps at 8 and 11, linear warm-up over 500 iterations, batch 2 x 8 GPUs; box and mask AP from CocoMetric.
# The checkpoint and pixel mean/std are injected by `mixbench transfer`; a checkpoint path never goes here.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/backbone_bn.py']

# The runner re-roots every dataset and the CocoMetric annotation file on this variable or on --data-root.
data_root = 'data/coco/'

model = dict(
    backbone=_base_.frozen_bn_backbone,
    # No norm layer in the newly initialised layers (FPN, box head, mask head; RPNHead has none).
    neck=dict(norm_cfg=None),
    roi_head=dict(
        bbox_head=dict(norm_cfg=None),
        mask_head=dict(norm_cfg=None)))
