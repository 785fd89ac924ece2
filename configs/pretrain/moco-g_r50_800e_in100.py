# Table 5, MoCo +Global (79.3%): eq. 3 with n=4 images (Table 1), per-sample probability 0.5 (sec. 4.2:
# ">= 0.5" suits MoCo), both views mixed with the same partners and coefficients (the authors' code).
_base_ = "./moco_r50_800e_in100.py"

model = dict(data_preprocessor=dict(global_mix=dict(n=4, p=0.5), views="both"))
