# CMC CPU preset with the paper's CMC mixtures (_base_/mixtures.py), global then region, under the printed
# equations (semantics='paper_eq'), as moco-mix_r18_synthetic.
_base_ = ["./cmc_r50half_synthetic.py", "./_base_/mixtures.py"]

model = dict(
    data_preprocessor=dict(
        global_mix=dict(_base_.cmc_global_mix, semantics="paper_eq"),
        region_mix=dict(_base_.cmc_region_mix, semantics="paper_eq"),
    )
)
