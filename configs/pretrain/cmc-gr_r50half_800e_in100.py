# Table 5, CMC +Global +Region-level (80.0%): global n=4 p=0.1, then region n=5 p=0.1 decay 0.2.
_base_ = "./cmc_r50half_800e_in100.py"

model = dict(
    data_preprocessor=dict(global_mix=dict(n=4, p=0.1), region_mix=dict(n=5, p=0.1, lambda_decay=0.2), views="both")
)
