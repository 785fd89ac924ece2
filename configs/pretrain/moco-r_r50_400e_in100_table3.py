# Table 3: context decay of eq. 4, MoCo region mixture (n=5), 400 epochs (best 0.2: 76.8%; 1.0 = no decay).
#   --cfg-options model.data_preprocessor.region_mix.lambda_decay=D
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
_base_ = ["./moco_r50_240e_in100.py", "./_base_/schedules_in100.py"]

train_cfg = _base_.in100_400e_train_cfg  # 400 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_400e_param_scheduler

model = dict(data_preprocessor=dict(region_mix=dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")))
