# The paper's mixture settings (sec. 4.2, Tables 1-5), one place. Leaves take them by reference, e.g.
# `region_mix=_base_.moco_region_mix`, and state only what they change; the names are prefixed because mmengine
# refuses a key that two bases both define.
#
# semantics='authors' runs the mixtures as the authors' released code did, the code behind the paper's numbers:
# each of the n - 1 mixing steps is taken on its own with probability p, with the sample itself as the base, and the
# region decay fades the context around the pasted boxes. semantics='paper_eq' runs the printed equations instead
# (all steps together with probability p; eq. 4 decays the first pasted box). Both views are mixed alike.
# n counts images, n - 1 steps; the authors' code counts steps and Tables 1-2 do not say which they vary, so a
# table row 'n' is read as n - 1 steps.

# MoCo: global n=4 (Table 1), region n=5 (Table 2) with decay 0.2 (Table 3), p=0.5 (sec. 4.2: ">= 0.5" suits MoCo).
moco_global_mix = dict(n=4, p=0.5, semantics="authors")
moco_region_mix = dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")
# CMC: p=0.1 (Table 4: CMC wants a small one); global n=4 (Table 4 note: "best 80.0% with 4"); the region's n and
# decay are the MoCo optima (the paper gives no CMC-specific values).
cmc_global_mix = dict(n=4, p=0.1, semantics="authors")
cmc_region_mix = dict(n=5, p=0.1, lambda_decay=0.2, semantics="authors")
