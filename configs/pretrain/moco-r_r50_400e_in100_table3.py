# Table 3: context decay of eq. 4, MoCo region mixture (n=5), 400 epochs (best 0.2: 76.8%; 1.0 = no decay).
#   --cfg-options model.data_preprocessor.region_mix.lambda_decay=D
# Mixtures as the authors' released code ran them (semantics='authors', the code behind the paper's numbers):
# each of the n - 1 steps taken on its own with probability p, the sample as the base; the region decay
# fades the context, not the pasted box as printed eq. 4 would (semantics='paper_eq').
_base_ = "./moco_r50_240e_in100.py"

# 400 epochs (Tables 1-3), CMC's milestones in proportion (1/2, 2/3, 5/6).
train_cfg = dict(max_epochs=400)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[200, 267, 333], gamma=0.1)]

model = dict(data_preprocessor=dict(region_mix=dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")))
ablation = dict(
    key="model.data_preprocessor.region_mix.lambda_decay",
    values=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0],
)
