# RetinaNet R50-FPN, COCO train2017 -> val2017, backbone BN frozen (paper Table 8a).
#
# Deltas only; the protocol is the mmdet 1x base: scale 1333x800 (keep ratio), 12 epochs, lr steps at 8 and 11,
# linear warm-up over 500 iterations, batch 2 x 8 GPUs. The paper uses lr 0.02 for all COCO models (mmdet's
# RetinaNet default is 0.01), set below.
# The checkpoint and pixel mean/std are injected by `mixbench transfer`; a checkpoint path never goes here.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/backbone_bn.py']

# The runner re-roots every dataset and the CocoMetric annotation file on this variable or on --data-root.
data_root = 'data/coco/'

model = dict(
    backbone=_base_.frozen_bn_backbone,
    # No norm layer in the newly initialised layers (FPN and the RetinaHead conv towers).
    neck=dict(norm_cfg=None),
    bbox_head=dict(norm_cfg=None))

optim_wrapper = dict(optimizer=dict(lr=0.02))
