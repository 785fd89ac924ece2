# The paper's section 4.3 comparison at full scale: ResNet-50 MoCo vs MoCo + global and region mixtures,
# pretrained on ImageNet-1K for 200 epochs, transferred to VOC (Faster R-CNN, Table 7) and COCO (RetinaNet and
# Mask R-CNN, Table 8) with both backbone BN modes. Needs the real data under data/ (ImageNet, VOCdevkit, coco)
# and GPUs: run the transfer stage with `mixbench transfer ... --launcher pytorch` under torchrun for 8 GPUs.
data_dir = 'data'  # holds imagenet/ (or as the pretraining configs say), VOCdevkit/, coco/
work_dir = 'work_dirs/pipeline/moco_vs_mix_r50_in1k'
results_dir = 'results/moco_vs_mix_r50_in1k'
seeds = [0]  # transfer runs: one per seed, each with its own run key and record

random_init = True
pretrain = [
    dict(name='moco', config='configs/pretrain/moco_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
    dict(name='moco+gr', config='configs/pretrain/moco-gr_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
]

bn_modes = ['finetune', 'frozen']  # Table 7 (a) "No Freeze" and (b) "Freeze BN"; Table 8 is frozen only
suites = ['voc', 'coco']  # mixbench.transfer.suites: VOC Faster R-CNN; COCO RetinaNet + Mask R-CNN
suite_scale = 'paper'  # R50-FPN, the paper protocol (configs/transfer/voc0712/, coco/)
paper_rows = True  # add the paper's published rows, marked 'paper'
