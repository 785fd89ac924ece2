# Table 5, CMC "+More Budget" (78.7%): 800 epochs, K=16384 (sec. 4.1).
_base_ = ["./cmc_r50half_240e_in100.py", "./_base_/schedules_in100.py"]

model = dict(K=16384)
train_cfg = _base_.in100_800e_train_cfg  # 800 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_800e_param_scheduler
