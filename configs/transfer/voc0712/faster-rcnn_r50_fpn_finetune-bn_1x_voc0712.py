# Faster R-CNN R50-FPN, VOC trainval07+12 -> test2007, backbone BN fine-tuned (paper Table 7a, "No Freeze").
#
# Same protocol as the frozen-BN config (1000x600, 12 epochs = RepeatDataset times 3 x 4 epochs, lr 0.01);
# only the backbone BN differs: SyncBN with trainable affine parameters and running statistics.
# On one process (or on CPU, where SyncBN does not run) the runner swaps SyncBN for plain BN and records it.
_base_ = './faster-rcnn_r50_fpn_frozen-bn_1x_voc0712.py'

model = dict(backbone=_base_.finetune_bn_backbone)
