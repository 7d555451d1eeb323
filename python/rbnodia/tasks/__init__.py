"""PipelineTasks of rbnodia, one module per task (Connections, Config, Task).

Importing this package registers the modules that ``pipetask run -j N
--start-method forkserver`` workers preload (`rbnodia.tasks.preload`).
"""

from .preload import register_forkserver_preload

register_forkserver_preload()
