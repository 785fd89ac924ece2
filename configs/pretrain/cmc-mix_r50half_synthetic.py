# CMC CPU preset with the paper's CMC mixtures: global n=4 then region n=5 (decay 0.2), p=0.1 each.
_base_ = "./cmc_r50half_synthetic.py"

model = dict(
    data_preprocessor=dict(global_mix=dict(n=4, p=0.1), region_mix=dict(n=5, p=0.1, lambda_decay=0.2), views="both")
)
