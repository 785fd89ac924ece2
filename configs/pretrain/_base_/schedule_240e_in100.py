# ImageNet-100 (sec. 4.1), shared by MoCo and CMC: batch 128 = 4 GPUs x 32, lr 0.03 (CMC's code base, which
# the paper's MoCo re-implements), x0.1 at 120/160/200 of 240 epochs (CMC's schedule).
_base_ = "./schedule_sgd_step.py"

# lr 0.03 is for a total batch of 128: mmengine's Runner scales it to the batch actually used
# (batch_size x processes / 128) through auto_scale_lr, e.g. 8 processes x 32 -> lr 0.06.
auto_scale_lr = dict(base_batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=0.03))
train_cfg = dict(max_epochs=240)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[120, 160, 200], gamma=0.1)]
