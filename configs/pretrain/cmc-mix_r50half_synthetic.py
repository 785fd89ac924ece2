# CMC CPU preset with the paper's CMC mixtures: global n=4 then region n=5 (decay 0.2), p=0.1 each.
# Printed-equation semantics (semantics='paper_eq', what the demo pipeline has always run); the authors'
# released code, as the Tables 1-6 configs use it: semantics='authors' (configs/pipeline/ablation_synthetic.py).
_base_ = "./cmc_r50half_synthetic.py"

model = dict(
    data_preprocessor=dict(
        global_mix=dict(n=4, p=0.1, semantics="paper_eq"),
        region_mix=dict(n=5, p=0.1, lambda_decay=0.2, semantics="paper_eq"),
        views="both",
    )
)
