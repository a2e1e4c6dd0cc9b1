"""The bundled gcc job: real C kernels whose own tuning parameters (tile sizes, unrolling, loop
order, radix width, prefetch distance: ``kernel_space.yaml``) are searched together with gcc flags
(``gcc_space.yaml``), and an objective that compiles, runs and verifies them.

```python
import genetune as gt
from genetune.jobs.gcc import GccObjective, load_job_space, measure_speedups, search_config

job = load_job_space("joint")  # or "flags": gcc flags alone, the kernels at their defaults
config = search_config(job.space, generations=6, pool_size=16, seed=1)
result = gt.Search(GccObjective(), job.space, config, constraints=list(job.constraints), warm_start=job.warm_start()).start()
print(measure_speedups(GccObjective(), result.get_best_result()["params"]).summary())
```
"""

from genetune.jobs.gcc.flags import BASELINE_FLAGS, VALUED_FLAGS, flags_from_params, is_macro, kernel_params
from genetune.jobs.gcc.objective import BASE_CFLAGS, KERNEL_DIR, KERNELS, GccObjective, Size
from genetune.jobs.gcc.space import (
    KERNEL_SPACE_PATH,
    SPACE_PATH,
    SPACES,
    WARM_START,
    JobSpace,
    kernel_defaults,
    load_job_space,
    load_space,
    march_supported,
    search_config,
    warm_start_candidates,
)
from genetune.jobs.gcc.stats import Comparison, SpeedupReport, measure_speedups

__all__ = [
    "BASELINE_FLAGS",
    "BASE_CFLAGS",
    "KERNELS",
    "KERNEL_DIR",
    "KERNEL_SPACE_PATH",
    "SPACES",
    "SPACE_PATH",
    "VALUED_FLAGS",
    "WARM_START",
    "Comparison",
    "GccObjective",
    "JobSpace",
    "Size",
    "SpeedupReport",
    "flags_from_params",
    "is_macro",
    "kernel_defaults",
    "kernel_params",
    "load_job_space",
    "load_space",
    "march_supported",
    "measure_speedups",
    "search_config",
    "warm_start_candidates",
]
