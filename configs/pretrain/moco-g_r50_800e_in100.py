# Table 5, MoCo +Global (79.3%): the paper's MoCo global mixture, eq. 3 (_base_/mixtures.py).
_base_ = ["./moco_r50_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(global_mix=_base_.moco_global_mix))
