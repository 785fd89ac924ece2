# Table 5, MoCo +Global +Region-level (79.8%): global (n=4, p=0.5) then region (n=5, p=0.5, decay 0.2).
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
_base_ = "./moco_r50_800e_in100.py"

model = dict(
    data_preprocessor=dict(
        global_mix=dict(n=4, p=0.5, semantics="authors"),
        region_mix=dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors"),
        views="both",
    )
)
