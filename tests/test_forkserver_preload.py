"""``pipetask run -j N --start-method forkserver`` workers start with what a
classification quantum needs already imported (`rbnodia.tasks.preload`).
"""

import json
import subprocess
import sys

import pytest

_CHILD = """
import json, multiprocessing, sys

def report(queue):
    queue.put(sorted(name for name in sys.argv[1:] if name in sys.modules))

if __name__ == "__main__":
    import rbnodia.tasks  # what pipetask does while it builds the graph
    for method in ("forkserver", "spawn"):
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        process = context.Process(target=report, args=(queue,))
        process.start()
        found = queue.get(timeout=120)
        process.join()
        print(json.dumps({method: found}))
"""


@pytest.mark.slow
def test_forkserver_workers_start_with_the_modules_preloaded(tmp_path):
    from rbnodia.tasks.preload import FORKSERVER_PRELOAD

    wanted = ["lsst.daf.butler", "lsst.pipe.base", "onnxruntime", "pyarrow.parquet", "rbnodia.tasks.classify",
              "rbnodia.tasks.compute_reliability"]
    assert set(wanted) <= set(FORKSERVER_PRELOAD)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    done = subprocess.run([sys.executable, str(script), *wanted], capture_output=True, text=True, timeout=300,
                          check=True)
    found = {}
    for line in done.stdout.splitlines():
        found.update(json.loads(line))
    assert found["forkserver"] == sorted(wanted)
    assert found["spawn"] == []  # the baseline: a spawned worker imports them itself
