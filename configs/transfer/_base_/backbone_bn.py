# The two backbone BN modes of the paper's detection protocols (sec. 4.3). Every layer of the backbone is fine-tuned
# in both; they differ only in its BN. Each paper config takes one by reference, in one line:
#   model = dict(backbone=_base_.frozen_bn_backbone, ...)      (Tables 7b, 8: "we fix all BN parameters")
#   model = dict(backbone=_base_.finetune_bn_backbone)         (Table 7a: BN fine-tuned, SyncBN across processes)
# They are plain variables that no mmdet component reads (mmengine refuses a key, such as `model`, defined in two
# bases). On one process, or on CPU where SyncBN does not run, the runner swaps SyncBN for plain BN and records it.
frozen_bn_backbone = dict(
    frozen_stages=-1,  # fine-tune every layer (paper 4.3); only the BN parameters are frozen
    norm_cfg=dict(type='BN', requires_grad=False),
    norm_eval=True,  # BN statistics frozen as well
    init_cfg=None)  # injected by the runner: dict(type='Pretrained', checkpoint=<converted file>)
# Applied over a frozen-BN config, so frozen_stages and init_cfg stay as there.
finetune_bn_backbone = dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False)
