# ImageNet-100 (sec. 4.1), shared by MoCo and CMC: lr 0.03 at batch 128 = 4 GPUs x 32 (CMC's code base, which the
# paper's MoCo re-implements), x0.1 at 120/160/200 of 240 epochs (CMC's schedule).
_base_ = "./schedule_200e_in1k.py"

auto_scale_lr = dict(base_batch_size=128)
train_cfg = dict(max_epochs=240)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[120, 160, 200], gamma=0.1)]
