"""PipelineTasks of rbnodia, one module per task (Connections, Config, Task)."""
