# Table 1: number of globally mixed images, MoCo, 400 epochs; this file is the best row (n=4: 76.30%). One run per
# row:
#   mixbench pretrain configs/pretrain/moco-g_r50_400e_in100_table1.py \
#       --cfg-options model.data_preprocessor.global_mix.n=N --work-dir work_dirs/pretrain/table1_nN
_base_ = ["./moco_r50_240e_in100.py", "./_base_/schedules_in100.py", "./_base_/mixtures.py"]

train_cfg = _base_.in100_400e_train_cfg  # 400 epochs, milestones in proportion (schedules_in100)
param_scheduler = _base_.in100_400e_param_scheduler

model = dict(data_preprocessor=dict(global_mix=_base_.moco_global_mix))
