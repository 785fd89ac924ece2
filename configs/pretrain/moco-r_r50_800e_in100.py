# Table 5, MoCo +Region-level (79.5%): the paper's MoCo region mixture, eqs. 4-5 (_base_/mixtures.py).
_base_ = ["./moco_r50_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(region_mix=_base_.moco_region_mix))
