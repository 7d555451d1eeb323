"""Write the BPS submit file with which the tests run the noDIA pipeline
through ctrl_bps_parsl's local site (config/bps/local.yaml), as a user
writes it.
"""

from __future__ import annotations

__all__ = ["write_local_submit"]

from pathlib import Path


def write_local_submit(folder: Path, *, repo, in_collection: str, output: str, data_query: str,
                       qgraph_config: str) -> Path:
    """Write ``folder/submit.yaml`` and return its path.

    Parameters
    ----------
    folder : `pathlib.Path`
        Where the submit file goes; BPS writes its run below
        ``folder/submit``.
    repo : path-like
        Butler repository.
    in_collection : `str`
        Input collections, comma-separated.
    output : `str`
        Output collection.
    data_query : `str`
        Data query ("" for every data ID).
    qgraph_config : `str`
        The ``-c`` option given to the quantum-graph build, e.g.
        ``classifyRealBogus:modelSource=butler``.

    Returns
    -------
    path : `pathlib.Path`
        The submit file.
    """
    submit = folder / "submit.yaml"
    submit.write_text(
        "includeConfigs:\n"
        "  - ${RBNODIA_DIR}/config/bps/local.yaml\n"
        "payload:\n"
        f"  butlerConfig: {repo}\n"
        f"  inCollection: {in_collection}\n"
        f"  output: {output}\n"
        f'  dataQuery: "{data_query}"\n'
        f'extraQgraphOptions: "-c {qgraph_config}"\n'
        f"submitPath: {folder}/submit/{{outputRun}}\n"
    )
    return submit
