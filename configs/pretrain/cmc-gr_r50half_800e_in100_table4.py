# Table 4: global-mixture probability on CMC, 800 epochs, global n=2 ("for speeding up training"), region fixed
# at p=0.1. One run per row:
#   G rows:   --cfg-options model.data_preprocessor.region_mix=None model.data_preprocessor.global_mix.p=P
#   G+R rows: --cfg-options model.data_preprocessor.global_mix.p=P
_base_ = ["./cmc_r50half_800e_in100.py", "./_base_/mixtures.py"]

model = dict(
    data_preprocessor=dict(global_mix=dict(_base_.cmc_global_mix, n=2), region_mix=_base_.cmc_region_mix)
)
