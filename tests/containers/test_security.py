# Copyright (c) 2026, the nvflare model fork authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The security issue's promises where jobs run in their own containers of the real engine.

The server parent's kit holds the dedicated model-signing key in ``signing/`` (installed
as docs/provenance.md tells operators), which no job container mounts, so the parent
signs strongly; a BYOC job of the deployment (the key thief of tests/support/key_thief.py
beside the key finder, in the fork's torch image) reads every key it can reach from its
container and the test forges with each; a config-only job aims a model locator at
another job's stored model and at the server's TLS key from its container.
"""

import json
from pathlib import Path

import pytest
from container_deployment import archive, wait_ended
from container_engine import PT_IMAGE
from container_jobs import in_image
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from key_thief import (
    EVIL,
    STRICT_REFUSAL,
    STRONG,
    cert_for,
    forgeries,
    public_bytes,
    stolen_material,
    verify_in_process,
)
from model_jobs import BEST, GLOBAL
from path_guard_jobs import GUARD_RULE, cse_locator_job

pytestmark = [pytest.mark.system, pytest.mark.slow]

WORKSPACE = "/var/tmp/nvflare/workspace"
SIGNING = f"{WORKSPACE}/signing"


def ca(deployment) -> str:
    return str(deployment.admin_kit / "startup" / "rootCA.pem")  # fed_admin.json beside it names the server


@pytest.fixture(scope="module")
def genuine(deployment, pt_run, tmp_path_factory) -> dict:
    """The PyTorch job's models as the admin downloads them, each with its provenance file."""
    dest = tmp_path_factory.mktemp("genuine")
    with deployment.session() as sess:
        return {c: sess.download_job_component(pt_run.job_id, c, str(dest)) for c in (GLOBAL, BEST)}


def test_the_parent_signs_with_its_dedicated_key_and_genuine_models_verify_strict(deployment, genuine):
    assert "model-signing key and certificate installed in" in deployment.signing_install
    log = deployment.parent_log()
    assert (
        f"Model provenance: models are signed with the dedicated model-signing key {SIGNING}/model_signing.key; "
        f"job processes (ServerDockerJobLauncher) cannot read {SIGNING}"
    ) in log, log[-4000:]
    for component, path in genuine.items():
        code, out, err = verify_in_process(path, "--ca", ca(deployment), "--strict")
        assert (code, err) == (0, ""), (component, out, err)
        assert out.strip().endswith(STRONG), out


def test_a_byoc_job_in_its_container_forges_nothing_strict_accepts(deployment, pt_run, genuine, tmp_path):
    with deployment.session() as sess:
        result = Path(sess.download_job_result(pt_run.job_id, str(tmp_path / "thief_dl")))
    keys, certs = stolen_material(result)
    tls = x509.load_pem_x509_certificate((deployment.kit("server") / "startup" / "server.crt").read_bytes())
    dedicated = x509.load_pem_x509_certificate((deployment.signing_dir / "model_signing.crt").read_bytes())
    origins = [o for o, _ in keys]
    assert any(public_bytes(k) == public_bytes(tls) for _, k in keys), origins  # the TLS key: upstream's mount
    assert not [o for o, k in keys if public_bytes(k) == public_bytes(dedicated)], origins
    assert not [o for o in origins if "signing" in o], origins

    proof = json.loads(Path(genuine[GLOBAL] + ".provenance.json").read_text())
    statement = json.loads(proof["statement"])
    assert statement["job_id"] == pt_run.job_id
    forged = 0
    for n, (origin, key) in enumerate(keys):
        cert = cert_for(key, certs)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM) if cert else proof["certificate"].encode()
        for variant, provenance in forgeries(statement, EVIL, key, cert_pem).items():
            evil = tmp_path / f"forged_{n}_{variant[:5]}.pt"
            evil.write_bytes(EVIL)
            Path(f"{evil}.provenance.json").write_text(json.dumps(provenance))
            code, out, err = verify_in_process(evil, "--ca", ca(deployment), "--strict")
            assert code == 1 and out == "", (origin, variant, out, err)
            assert err.startswith(f"FAILED {evil}: "), (origin, variant, err)
            if public_bytes(key) == public_bytes(tls):
                assert err.strip() == f"FAILED {evil}: {STRICT_REFUSAL}", (origin, variant, err)
            forged += 1
    assert forged == 2 * len(keys)

    # the link the job left to the parent's key comes back as nothing of the key
    secret = (deployment.signing_dir / "model_signing.key").read_bytes()
    files = archive(deployment, pt_run.job_id)
    assert not [name for name, data in files.items() if secret in data]
    assert not [p for p in result.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_config_only_job_in_its_container_cannot_aim_a_locator_at_another_job(deployment, pt_run, tmp_path):
    stored = deployment.job_store_dir(pt_run.job_id) / GLOBAL
    names = {
        "victim": f"{WORKSPACE}/jobs-storage/{pt_run.job_id}/{GLOBAL}",  # the parent's path of another job's model
        "server": "{WORKSPACE}/startup/server.key",
    }
    job = in_image(cse_locator_job(tmp_path, "steal_ctr", model_name=names, n_clients=2), PT_IMAGE, True)
    with deployment.session() as sess:
        job_id = sess.submit_job(str(job))
    status, _, ended = wait_ended(deployment, job_id)
    print(f"refused job {job_id} ended {ended}: {status}")
    # EXECUTION_EXCEPTION where the engine reports the container's exit (see wait_ended)
    assert status.startswith("FINISHED:"), (status, deployment.parent_log()[-4000:])
    files = archive(deployment, job_id)
    job_log = files["log.txt"].decode(errors="replace")
    run = f"{WORKSPACE}/{job_id}"
    for key, path in (("victim", names["victim"]), ("server", f"{WORKSPACE}/startup/server.key")):
        assert (
            f"Job {job_id}: refused model locator 'model_locator' (NPModelLocator): model_name.{key} "
            f"'{path}' (read) resolves to '{path}', outside the job's run folder '{run}': {GUARD_RULE}"
        ) in job_log, job_log[-4000:]
    assert "Loaded server model from" not in job_log
    victim = stored.read_bytes()
    assert not [name for name, data in files.items() if victim in data]
