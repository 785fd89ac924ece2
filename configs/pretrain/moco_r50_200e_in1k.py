# Table 6, MoCo R50 (59.5%): MoCo v1 on ImageNet-1K, 200 epochs, as its bases state it.
# Table 7/8's detection baselines use K=16384: --cfg-options model.K=16384.
_base_ = ["./_base_/models/moco_v1.py", "./_base_/default_runtime.py", "./_base_/schedule_200e_in1k.py"]
