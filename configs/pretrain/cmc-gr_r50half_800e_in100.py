# Table 5, CMC +Global +Region-level (80.0%): the paper's CMC global, then region mixture (_base_/mixtures.py).
_base_ = ["./cmc_r50half_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(global_mix=_base_.cmc_global_mix, region_mix=_base_.cmc_region_mix))
