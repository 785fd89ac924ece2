# The paper's section 4.3 comparison at full scale: ResNet-50 MoCo vs MoCo + global and region mixtures,
# pretrained on ImageNet-1K for 200 epochs, transferred to VOC (Faster R-CNN, Table 7) and COCO (RetinaNet and
# Mask R-CNN, Table 8) with both backbone BN modes. Needs the real data under data/ (ImageNet, VOCdevkit, coco)
# and GPUs: `mixbench pipeline configs/pipeline/moco_vs_mix_r50_in1k.py --executor torchrun` on one 8-GPU node, or
# `--executor slurm` on a cluster (the resources below).
data_dir = 'data'  # holds imagenet/ (or as the pretraining configs say), VOCdevkit/, coco/
work_dir = 'work_dirs/pipeline/moco_vs_mix_r50_in1k'
results_dir = 'results/moco_vs_mix_r50_in1k'
# Transfer trials, each seed its own run, run key and record; tables show mean ± s.d. and paired differences.
# VOC: 5, MoCo's protocol (a single VOC run moves by several AP). COCO: 3, the fewest whose paired 95% interval
# (t = 4.30 at n = 3, 12.7 at n = 2) resolves the paper's 0.5-1 AP gaps at COCO's run-to-run s.d. (about 0.1 AP
# over 3 runs in Detectron's getting-started notes).
seeds = dict(voc=[0, 1, 2, 3, 4], coco=[0, 1, 2])

random_init = True
pretrain = [
    dict(name='moco', config='configs/pretrain/moco_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
    dict(name='moco+gr', config='configs/pretrain/moco-gr_r50_200e_in1k.py', cfg_options={'model.K': 16384}),
]

bn_modes = ['finetune', 'frozen']  # Table 7 (a) "No Freeze" and (b) "Freeze BN"; Table 8 is frozen only
suites = ['voc', 'coco']  # mixbench.transfer.suites: VOC Faster R-CNN; COCO RetinaNet + Mask R-CNN
suite_scale = 'paper'  # R50-FPN, the paper protocol (configs/transfer/voc0712/, coco/)
paper_rows = True  # add the paper's published rows, marked 'paper'

# Where the jobs run. 'local' starts each job as one process on this machine: right for the demo, not for this
# workload; pick `--executor torchrun` (one 8-GPU node) or `--executor slurm` (a cluster) on the command line.
executor = 'local'
# torchrun: every job takes the node's 8 GPUs (one process each), the paper's setting: pretraining at 8 x 32 = 256
# images per step (the lr of schedule_200e_in1k.py is quoted for it), detection at 8 x 2 = 16 (mmdet's 1x lr). The
# jobs then run one after another: 2 pretrainings (about 53 h each for 200 epochs on 8 V100, MoCo's README), then
# 3 checkpoints x (VOC 2 BN modes x 5 seeds + COCO 2 detectors x 2 BN modes x 3 seeds) = 66 transfers.
gpus_per_job = 8
# Slurm (submitit): one job per pretraining and per transfer run, all of a stage submitted at once. Shared keys
# first; a stage's own dict overrides them for its jobs. One node x 8 tasks x 1 GPU each: the torchrun setting as
# Slurm tasks (`--launcher slurm` inside), with 10 CPUs and 40 GB per GPU as DeiT's submitit launcher asks (the
# MoCo loaders run 8 workers per process). partition, account, qos, constraint: your cluster's (None: not asked),
# e.g. `--cfg-options slurm.partition=gpu slurm.account=ssl`.
slurm = dict(
    nodes=1, tasks_per_node=8, gpus_per_task=1, cpus_per_task=10, mem_gb=320,
    partition=None, account=None, qos=None, constraint=None,
    # 72 h, the longest limit many clusters allow (DeiT's launcher notes it), covers 200 epochs (~53 h) in one job.
    # 400-800 epochs (~106-212 h) take 2-3 jobs: 120 s before the limit Slurm signals the job, submitit requeues it
    # and it resumes from its last checkpoint (every 10 epochs: at most ~10 epochs trained twice). max_requeues counts
    # time limits only (a preempted job is requeued without counting); 8 leave room for GPUs slower than V100s.
    pretrain=dict(timeout_min=72 * 60, max_requeues=8),
    # One detector run, 12 epochs on 8 GPUs: hours (COCO Mask R-CNN the longest). 24 h, and 3 requeues for a slow
    # node. mmdet checkpoints every epoch: a requeue repeats at most a quarter of a VOC run (4 epochs of 3 passes),
    # a twelfth of a COCO run.
    transfer=dict(timeout_min=24 * 60, max_requeues=3),
)
