# The demo on a second CPU instruction path, for `make demo-isa`: the same pipeline with its own work dir and
# results, run under ONEDNN_MAX_CPU_ISA=SSE41 (oneDNN's convolutions) and ATEN_CPU_CAPABILITY=default (torch's
# portable kernels), so that every float kernel differs from the default AVX2/AVX-512 path. Its tables set beside
# results/demo/ show whether the demo's verdict survives other kernels, as it must on another machine.
_base_ = ['./demo_synthetic.py']

work_dir = 'work_dirs/pipeline/demo_isa'
results_dir = 'results/demo_isa'
