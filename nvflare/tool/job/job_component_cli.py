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
"""``nvflare job download <job_id> --component NAME [-o DIR] [--force]``.

Fetches one job-store component (typically MODEL_global_model) to
``<DIR or .>/components/<job_id>/<NAME><original extension>`` (component_file_names: e.g.
``MODEL_global_model.weights.h5``; never ``<DIR>/<job_id>``, where the whole-result download
goes), verified against the server's sha256/size record. Unlike
the whole-result download it works whatever the job's status, as long as the component
exists. An existing file is never replaced without --force, as for the job download; one
that holds exactly the listed bytes is reported as already downloaded. An interrupted
download resumes when the command is run again (component_partial).
"""

import os

COMPONENT_EXAMPLES = [
    "nvflare job download <job_id> --component MODEL_global_model",
    "nvflare job download <job_id> --component MODEL_best_global_model -o /path/to/models --force",
]


def add_component_option(parser):
    parser.add_argument(
        "--component",
        default=None,
        help="download only this job-store component (e.g. MODEL_global_model) to "
        "<output-dir>/components/<job_id>/<component><original extension, e.g. .weights.h5>",
    )


def cmd_job_download_component(cmd_args, open_session):
    """Run the component download; ``open_session(cmd_args, study=...)`` is job_cli's session opener."""
    from nvflare.apis.utils.component_file_names import download_file_name
    from nvflare.apis.utils.component_names import component_name_problem
    from nvflare.fuel.flare_api.api_spec import AuthorizationError, JobNotFound, NoConnection
    from nvflare.fuel.flare_api.component_download import ComponentNotFound
    from nvflare.tool.cli_output import is_json_mode, output_error, output_error_message, output_ok, print_human

    def fail(code, message, exit_code=1, hint=""):
        output_error_message(code, message, hint=hint, exit_code=exit_code)

    job_id, component = cmd_args.job_id, cmd_args.component
    problem = component_name_problem(component)
    if problem:  # before the name is used in a local path
        fail("INVALID_ARGS", problem, exit_code=4)
    study = getattr(cmd_args, "study", None) or "default"
    out_dir = os.path.abspath(os.path.join(getattr(cmd_args, "output_dir", None) or ".", "components", job_id))
    force = bool(getattr(cmd_args, "force", False))
    hint = "Use --force to replace the existing file, remove it, or choose a different --output-dir."

    try:
        with open_session(cmd_args, study=study) as sess:
            # the file's name depends on the component's record (its original extension)
            info = _listed_record(sess, job_id, component)
            target = os.path.join(out_dir, download_file_name(component, info))
            already = _holds(target, info)  # the very bytes: reported as downloaded, nothing transferred
            if os.path.lexists(target) and not force and not already:
                output_error(
                    "INVALID_ARGS", exit_code=4, detail=f"download destination already exists: {target}", hint=hint
                )
            if not is_json_mode():
                print_human(f"Downloading {component} of job {job_id} ...")
            path = sess.download_job_component(job_id, component, out_dir)
    except JobNotFound:
        output_error("JOB_NOT_FOUND", job_id=job_id, detail=f"searched study '{study}'")
    except ComponentNotFound as e:
        fail("COMPONENT_NOT_FOUND", str(e), hint="Pick one of the components the job has (listed in the message).")
    except AuthorizationError as e:
        output_error("NOT_AUTHORIZED", detail=str(e))
    except NoConnection as e:
        output_error("CONNECTION_FAILED", exit_code=2, detail=str(e))
    except RuntimeError as e:
        fail("DOWNLOAD_FAILED", str(e))
    except OSError as e:
        output_error("OUTPUT_DIR_NOT_WRITABLE", path=out_dir, detail=str(e))

    if path != target:
        # Only possible with --force (otherwise we stopped above) or a file that appeared
        # meanwhile: the verified download got a free name; --force moves it over target.
        if force:
            from nvflare.fuel.hci.client.component_provenance import move_proof

            os.replace(path, target)
            move_proof(path, target)
            path = target
    if is_json_mode():
        # "info": the same row list_job_component_info returns (file name, format, round, metric, sha256)
        output_ok({"job_id": job_id, "component": component, "path": path, "info": info or {}, **_signed(path)})
    elif already and path == target:
        print_human(f"Component {component} is already downloaded: {path} (sha256 verified; nothing transferred)")
    else:
        print_human(f"Component {component} downloaded to: {path}")
        if info:
            print_human(_describe(info))
        print_human(_signed(path)["signature"])


def _holds(path: str, info) -> bool:
    """Whether ``path`` is a file with exactly the listed size and sha256."""
    from nvflare.fuel.utils.file_digest import sha256_and_size

    if not info or not info.get("sha256") or not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        return os.path.getsize(path) == info.get("size") and sha256_and_size(path) == (info["sha256"], info["size"])
    except OSError:
        return False


def _signed(path: str) -> dict:
    """What the (already verified) download says about its signature: the line, and the proof file beside it."""
    from nvflare.fuel.hci.client.component_provenance import proof_summary

    return proof_summary(path)


def _listed_record(sess, job_id: str, component: str):
    """The component's row from list_job_component_info (its record), or None if not listed."""
    for row in sess.list_job_component_info(job_id):
        if row.get("name") == component:
            return row
    return None


def _describe(info: dict) -> str:
    """One line with what list_job_component_info shows for the component."""
    from nvflare.fuel.hci.component_info_table import best_by

    shown = (("original file", "file_name"), ("format", "format"), ("round", "round"))
    parts = [f"{label} {info[key]}" for label, key in shown if info.get(key) not in (None, "")]
    if best_by(info):
        parts.append(f"best by {best_by(info)}")
    parts.append(f"{info.get('size')} bytes" + (f", sha256 {info['sha256']}" if info.get("sha256") else ""))
    return "; ".join(parts)
