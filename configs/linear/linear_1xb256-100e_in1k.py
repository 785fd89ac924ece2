# Linear evaluation on ImageNet-1K, the paper's protocol (sec. 4.2, Table 6): as ImageNet-100 but all 1000
# classes, SGD lr 30, weight decay 0, 100 epochs, lr x0.1 at epochs 60, 80 and 90.
_base_ = ["./linear_1xb256-60e_in100.py"]

classes = None  # every class folder of ROOT/train (1000 on ImageNet-1K)
model = dict(num_classes=1000)
train_dataloader = dict(dataset=dict(classes=classes))
val_dataloader = dict(dataset=dict(classes=classes))

optim_wrapper = dict(optimizer=dict(lr=30.0, weight_decay=0.0))
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[60, 80, 90], gamma=0.1)]
train_cfg = dict(max_epochs=100, val_interval=20)
