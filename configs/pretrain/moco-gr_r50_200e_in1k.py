# Table 6, Ours R50 (60.8%): the ImageNet-100 MoCo mixtures carried over (sec. 4.2: "our ImageNet-1K settings are
# mainly inherited from ImageNet-100"), global then region (_base_/mixtures.py).
# Tables 7-8 "Ours (K=16384)": --cfg-options model.K=16384.
_base_ = ["./moco_r50_200e_in1k.py", "./_base_/mixtures.py"]

model = dict(data_preprocessor=dict(global_mix=_base_.moco_global_mix, region_mix=_base_.moco_region_mix))
