"""BPS (ctrl_bps_parsl, local site) against a shared repository with a
PostgreSQL registry: each job runs its quantum from a quantum-backed butler
(``pipetask run-qbb``, no registry access) and the final job writes the
outputs into the PostgreSQL registry (``butler transfer-from-graph``)."""

import pytest
from sharedrepo import BIN, admin_env, run

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

OUTPUT = "u/test/bps-postgres"


def test_bps_submit_postgres(tmp_path, make_postgres_repo, simulated_inputs, nodia_model_file):
    pytest.importorskip("lsst.ctrl.bps.parsl")
    from lsst.daf.butler import Butler

    repo = make_postgres_repo(tmp_path / "repo")
    submit = tmp_path / "submit.yaml"
    submit.write_text(
        "includeConfigs:\n"
        "  - ${RBNODIA_DIR}/config/bps/local.yaml\n"
        "payload:\n"
        f"  butlerConfig: {repo}\n"
        f"  inCollection: {simulated_inputs['collection']}\n"
        f"  output: {OUTPUT}\n"
        '  dataQuery: ""\n'
        f'extraQgraphOptions: "-c classifyRealBogus:modelName={nodia_model_file}"\n'
        f"submitPath: {tmp_path}/submit/{{outputRun}}\n"
    )
    run([BIN / "bps", "submit", submit], admin_env(), cwd=tmp_path, timeout=900)

    butler = Butler.from_config(str(repo))
    assert "registry='PostgreSQL@" in str(butler)
    refs = butler.query_datasets("rbnodia_reliability", collections=OUTPUT, explain=False)
    assert sorted((r.dataId["visit"], r.dataId["detector"]) for r in refs) == sorted(
        (d["visit"], d["detector"]) for d in simulated_inputs["data_ids"])
    for ref in refs:
        assert len(butler.get(ref)) == len(
            butler.get("dia_source_unstandardized", ref.dataId, collections=simulated_inputs["collection"]))
    print(sorted(p.relative_to(tmp_path) for p in (tmp_path / "submit").rglob("*") if p.is_file()))
