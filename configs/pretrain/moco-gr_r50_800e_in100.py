# Table 5, MoCo +Global +Region-level (79.8%): the paper's MoCo global, then region mixture (_base_/mixtures.py).
_base_ = ["./moco_r50_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(global_mix=_base_.moco_global_mix, region_mix=_base_.moco_region_mix))
