# Table 5, MoCo "+More Budget" (78.2%): the baseline trained 800 epochs.
_base_ = "./moco_r50_240e_in100.py"

# "+More Budget" (Table 5): 800 epochs. The paper does not give the 800-epoch milestones; CMC's 240-epoch
# milestones (120/160/200 = 1/2, 2/3, 5/6 of training) are kept in proportion.
train_cfg = dict(max_epochs=800)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[400, 533, 667], gamma=0.1)]
