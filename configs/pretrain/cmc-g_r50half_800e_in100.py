# Table 5, CMC +Global (79.7%): the paper's CMC global mixture (_base_/mixtures.py).
_base_ = ["./cmc_r50half_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(global_mix=_base_.cmc_global_mix))
