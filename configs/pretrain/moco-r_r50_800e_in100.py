# Table 5, MoCo +Region-level (79.5%): eqs. 4-5 with n=5 images (Table 2), lambda_decay=0.2 (Table 3), p=0.5.
_base_ = "./moco_r50_800e_in100.py"

model = dict(data_preprocessor=dict(region_mix=dict(n=5, p=0.5, lambda_decay=0.2), views="both"))
