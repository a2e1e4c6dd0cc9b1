"""Ready-made tuning jobs bundled with genetune (``genetune.jobs.gcc``: gcc flags for C kernels)."""
