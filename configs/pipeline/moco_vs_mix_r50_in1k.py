# The paper's section 4.3 comparison at full scale: ResNet-50 MoCo vs MoCo + global and region mixtures,
# pretrained on ImageNet-1K for 200 epochs, transferred to VOC (Faster R-CNN, Table 7) and COCO (RetinaNet and
# Mask R-CNN, Table 8) with both backbone BN modes. Needs the real data under data/ (ImageNet, VOCdevkit, coco)
# and GPUs: run the transfer stage with `mixbench transfer ... --launcher pytorch` under torchrun for 8 GPUs.
data_dir = 'data'  # holds imagenet/ (or as the pretraining configs say), VOCdevkit/, coco/
work_dir = 'work_dirs/pipeline/moco_vs_mix_r50_in1k'
results_dir = 'results/moco_vs_mix_r50_in1k'
seed = 0

random_init = True
pretrain = [
    dict(name='moco', config='configs/pretrain/moco_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
    dict(name='moco+gr', config='configs/pretrain/moco-gr_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
]

bn_modes = ['finetune', 'frozen']  # Table 7 (a) "No Freeze" and (b) "Freeze BN"; Table 8 is frozen only
suites = dict(
    voc=dict(
        frozen=['configs/transfer/voc0712/faster-rcnn_r50_fpn_frozen-bn_1x_voc0712.py'],
        finetune=['configs/transfer/voc0712/faster-rcnn_r50_fpn_finetune-bn_1x_voc0712.py']),
    coco=dict(
        frozen=['configs/transfer/coco/retinanet_r50_fpn_frozen-bn_1x_coco.py',
                'configs/transfer/coco/mask-rcnn_r50_fpn_frozen-bn_1x_coco.py'],
        finetune=['configs/transfer/coco/retinanet_r50_fpn_finetune-bn_1x_coco.py',
                  'configs/transfer/coco/mask-rcnn_r50_fpn_finetune-bn_1x_coco.py']),
)
paper_rows = True  # add the paper's published rows, marked 'paper'
