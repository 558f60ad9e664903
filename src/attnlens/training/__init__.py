"""Fine-tuning with Accelerate: job configs, data, batching, optimisation, checkpoints, outputs.

`run_job(load_job_config(path, overrides), command)` is the whole job; `training/train.py` and
`attnlens train` are thin wrappers around it.
"""
