# CPU preset with the paper's MoCo mixtures (_base_/mixtures.py), global then region, under the printed equations
# (semantics='paper_eq'); configs/pipeline/ablation_synthetic.py runs the authors' semantics at this scale.
_base_ = ["./moco_r18_synthetic.py", "./_base_/mixtures.py"]

model = dict(
    data_preprocessor=dict(
        global_mix=dict(_base_.moco_global_mix, semantics="paper_eq"),
        region_mix=dict(_base_.moco_region_mix, semantics="paper_eq"),
    )
)
