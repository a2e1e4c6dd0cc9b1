"""The bundled "gcc flag tuning" job: real C kernels, a gcc flag search space and an objective
that compiles, runs and verifies them.

```python
import genetune as gt
from genetune.jobs.gcc import GccObjective, load_space, measure_speedups, search_config

space = load_space()
result = gt.Search(GccObjective(), space, search_config(space, generations=6, pool_size=16, seed=1)).start()
best = result.get_best_result()
print(measure_speedups(GccObjective(), best["params"]).summary())
```
"""

from genetune.jobs.gcc.flags import BASELINE_FLAGS, VALUED_FLAGS, flags_from_params
from genetune.jobs.gcc.objective import BASE_CFLAGS, KERNEL_DIR, KERNELS, GccObjective, Size
from genetune.jobs.gcc.space import SPACE_PATH, load_space, march_supported, search_config
from genetune.jobs.gcc.stats import Comparison, SpeedupReport, measure_speedups

__all__ = [
    "BASELINE_FLAGS",
    "BASE_CFLAGS",
    "KERNELS",
    "KERNEL_DIR",
    "SPACE_PATH",
    "VALUED_FLAGS",
    "Comparison",
    "GccObjective",
    "Size",
    "SpeedupReport",
    "flags_from_params",
    "load_space",
    "march_supported",
    "measure_speedups",
    "search_config",
]
