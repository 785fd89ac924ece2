# Table 6, Ours R50 (60.8%): the ImageNet-100 mixtures carried over (sec. 4.2: "our ImageNet-1K settings are
# mainly inherited from ImageNet-100"): global n=4, region n=5, decay 0.2, p=0.5.
# Tables 7-8 "Ours (K=16384)": --cfg-options model.K=16384.
_base_ = "./moco_r50_200e_in1k.py"

model = dict(
    data_preprocessor=dict(global_mix=dict(n=4, p=0.5), region_mix=dict(n=5, p=0.5, lambda_decay=0.2), views="both")
)
