# Table 5, CMC +Region-level (79.6%): the paper's CMC region mixture (_base_/mixtures.py).
_base_ = ["./cmc_r50half_800e_in100.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(region_mix=_base_.cmc_region_mix))
