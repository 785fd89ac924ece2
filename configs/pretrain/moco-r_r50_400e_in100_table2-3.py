# Table 2: number of region-mixed images, MoCo, 400 epochs (best n=5: 76.36%), decay 0.2. One run per value:
#   --cfg-options model.data_preprocessor.region_mix.n=N
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
# n counts images (n - 1 mixing steps); the authors' code counts steps (num_mix = n - 1) and the table does
# not say which it varies: read a row 'n' as n - 1 steps here.
_base_ = ["./moco_r50_240e_in100.py", "./_base_/schedules_in100.py"]

train_cfg = _base_.in100_400e_train_cfg  # 400 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_400e_param_scheduler

model = dict(data_preprocessor=dict(region_mix=dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")))
