# Table 5, MoCo +Global (79.3%): eq. 3 with n=4 images (Table 1), per-sample probability 0.5 (sec. 4.2:
# ">= 0.5" suits MoCo), both views mixed with the same partners and coefficients (the authors' code).
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
_base_ = "./moco_r50_800e_in100.py"

model = dict(data_preprocessor=dict(global_mix=dict(n=4, p=0.5, semantics="authors"), views="both"))
