# Table 4: global-mixture probability on CMC, 800 epochs, global n=2 ("for speeding up training"), region
# fixed at p=0.1. G rows: --cfg-options model.data_preprocessor.region_mix=None
#                                        model.data_preprocessor.global_mix.p=P
# G+R rows: --cfg-options model.data_preprocessor.global_mix.p=P
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
_base_ = "./cmc_r50half_800e_in100.py"

model = dict(
    data_preprocessor=dict(
        global_mix=dict(n=2, p=0.1, semantics="authors"),
        region_mix=dict(n=5, p=0.1, lambda_decay=0.2, semantics="authors"),
    )
)
