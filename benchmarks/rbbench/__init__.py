"""Helpers of ``benchmarks/run_benchmarks.py``: one module per section.

=========  ===============================================================
section    module
=========  ===============================================================
1          `rbbench.inference`: ms/stamp of the paper networks
2, 3       `rbbench.detector`: a full detector in memory; avoided DIA cost
4          `rbbench.pipetask`: ``pipetask run`` end to end
5          `rbbench.training`: training time per epoch
=========  ===============================================================

`rbbench.common` holds what the sections share; `rbbench.script` the ``main``
of every script in ``benchmarks/``.
"""
