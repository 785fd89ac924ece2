# The ImageNet-100 schedules of the paper, one place (sec. 4.1 and Tables 1-5). CMC's 240-epoch schedule steps the
# lr x0.1 at 120/160/200 (1/2, 2/3, 5/6 of training); the paper does not give milestones for its 400-epoch
# (Tables 1-3) and 800-epoch (Table 5 "+More Budget", mixtures) runs, so CMC's proportions are kept.
# Leaves take them by reference, e.g. `train_cfg = _base_.in100_400e_train_cfg`; the names are prefixed because
# mmengine refuses a key that two bases both define.
in100_400e_train_cfg = dict(max_epochs=400)
in100_400e_param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[200, 267, 333], gamma=0.1)]
in100_800e_train_cfg = dict(max_epochs=800)
in100_800e_param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[400, 533, 667], gamma=0.1)]
