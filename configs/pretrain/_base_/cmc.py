# CMC (Tian et al. 2019), YCbCr: L and CbCr into two half-width ResNet-50, Softmax-CE, memory bank of K
# negatives; one crop per image (both views come from it), crop + flip augmentation.
_base_ = ["./models/cmc.py", "./default_runtime.py", "./schedule_sgd_step.py"]
