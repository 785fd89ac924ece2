# Table 5, MoCo "+More Budget" (78.2%): the baseline trained 800 epochs.
_base_ = ["./moco_r50_240e_in100.py", "./_base_/schedules_in100.py"]

train_cfg = _base_.in100_800e_train_cfg  # 800 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_800e_param_scheduler
