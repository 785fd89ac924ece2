# Tables 2 and 3: the region mixture on MoCo, 400 epochs; this file is the best row of both, n=5 (Table 2:
# 76.36%) with lambda_decay=0.2 (Table 3: 76.8%). One run per row:
#   Table 2: --cfg-options model.data_preprocessor.region_mix.n=N
#   Table 3: --cfg-options model.data_preprocessor.region_mix.lambda_decay=D   (1.0: no decay)
_base_ = ["./moco_r50_240e_in100.py", "./_base_/schedules_in100.py", "./_base_/mixtures.py"]

train_cfg = _base_.in100_400e_train_cfg  # 400 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_400e_param_scheduler

model = dict(data_preprocessor=dict(region_mix=_base_.moco_region_mix))
