# Faster R-CNN R50-FPN, VOC trainval07+12 -> test2007, backbone BN frozen (paper Table 7b, "Freeze BN").
#
# Deltas only; the paper's protocol is the mmdet base:
#   scale 1000x600 (train and test, keep ratio), SGD lr 0.01, batch 2 x 8 GPUs,
#   12 epochs = RepeatDataset(times=3) x max_epochs=4, lr step after base epoch 3 (= 9 of 12).
# The pretrained checkpoint and its pixel mean/std are injected by `mixbench transfer`
# (model.backbone.init_cfg, model.data_preprocessor.mean/std); a checkpoint path never goes here.
_base_ = ['mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py', '../_base_/backbone_bn.py']

# The runner re-roots every dataset (and evaluator annotation file) on this variable or on --data-root.
data_root = 'data/VOCdevkit/'

model = dict(
    backbone=_base_.frozen_bn_backbone,
    # No norm layer in the newly initialised layers (paper 4.3: "we did not use BN in the neck").
    # RPNHead is one plain Conv2d with no norm option.
    neck=dict(norm_cfg=None),
    roi_head=dict(bbox_head=dict(norm_cfg=None)))

# AP50 from mmdet's VOCMetric (11 points, as mmdet 2 / VOC2007) plus Recall as in Table 7 (transfer/metrics.py).
custom_imports = dict(imports=['mixbench.transfer.metrics'], allow_failed_imports=False)
val_evaluator = dict(type='VOCRecallMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
