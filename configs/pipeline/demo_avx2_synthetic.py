# The demo capped at AVX2, for `make demo-avx2` on a machine whose default path is AVX-512: the same pipeline with
# its own work dir and results, run under ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's convolutions) and
# ATEN_CPU_CAPABILITY=avx2 (torch's kernels). Set beside `make demo` run on the same machine, its tables show whether
# the demo's verdict survives the step from AVX-512 to AVX2 kernels.
_base_ = ['./demo_synthetic.py']

work_dir = 'work_dirs/pipeline/demo_avx2'
results_dir = 'results/demo_avx2'
