# CPU preset with the paper's MoCo mixtures, global (n=4) then region (n=5, decay 0.2), p=0.5 each.
_base_ = "./moco_r18_synthetic.py"

model = dict(
    data_preprocessor=dict(global_mix=dict(n=4, p=0.5), region_mix=dict(n=5, p=0.5, lambda_decay=0.2), views="both")
)
