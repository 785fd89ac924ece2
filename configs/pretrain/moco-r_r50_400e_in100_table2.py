# Table 2: number of region-mixed images, MoCo, 400 epochs (best n=5: 76.36%), decay 0.2. One run per value:
#   --cfg-options model.data_preprocessor.region_mix.n=N
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
# n counts images (n - 1 mixing steps); the authors' code counts steps (num_mix = n - 1) and the table does
# not say which it varies: read a row 'n' as n - 1 steps here.
_base_ = "./moco_r50_240e_in100.py"

# 400 epochs (Tables 1-3), CMC's milestones in proportion (1/2, 2/3, 5/6).
train_cfg = dict(max_epochs=400)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[200, 267, 333], gamma=0.1)]

model = dict(data_preprocessor=dict(region_mix=dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")))
ablation = dict(key="model.data_preprocessor.region_mix.n", values=[2, 3, 4, 5, 6, 7])
