# Table 5, MoCo +Global +Region-level (79.8%): global (n=4, p=0.5) then region (n=5, p=0.5, decay 0.2).
_base_ = "./moco_r50_800e_in100.py"

model = dict(
    data_preprocessor=dict(global_mix=dict(n=4, p=0.5), region_mix=dict(n=5, p=0.5, lambda_decay=0.2), views="both")
)
