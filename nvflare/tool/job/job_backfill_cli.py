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
"""``nvflare job backfill-model <job_id> | --all``: models for jobs that finished without them.

The subcommand is added to ``nvflare job`` by job_cli.py's parser set-up (a one-line
hook); it runs Session.backfill_job_model / backfill_all_job_models and prints one line
per job (or the results as JSON with ``--format json``).
"""

CMD_JOB_BACKFILL = "backfill-model"
EXAMPLES = [
    "nvflare job backfill-model <job_id>",
    "nvflare job backfill-model --all",
]


def define_backfill_parser(job_subparser, parsers: dict, handlers: dict, open_session):
    """Add the subcommand; ``open_session(cmd_args, study=...)`` is job_cli's session opener."""
    from nvflare.tool.cli_session import add_startup_kit_selection_args

    p = job_subparser.add_parser(
        CMD_JOB_BACKFILL,
        help="publish MODEL_global_model / MODEL_best_global_model of finished jobs that have none",
    )
    p.add_argument("job_id", nargs="?", default=None, help="job ID (or --all)")
    p.add_argument("--all", action="store_true", help="every job of the study (project_admin only)")
    p.add_argument("--study", type=str, default="default", help="study containing the job(s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the server (default 600)")
    add_startup_kit_selection_args(p)
    parsers[CMD_JOB_BACKFILL] = p
    handlers[CMD_JOB_BACKFILL] = lambda cmd_args: cmd_job_backfill(cmd_args, open_session)


def cmd_job_backfill(cmd_args, open_session):
    from nvflare.fuel.flare_api.api_spec import AuthorizationError, JobNotFound, NoConnection
    from nvflare.fuel.flare_api.model_backfill import BackfillFailed
    from nvflare.tool.cli_output import is_json_mode, output_error, output_error_message, output_ok, print_human

    job_id, all_jobs = cmd_args.job_id, bool(cmd_args.all)
    if bool(job_id) == all_jobs:
        output_error_message("INVALID_ARGS", "give either a job ID or --all", exit_code=4)
    study = getattr(cmd_args, "study", None) or "default"
    try:
        with open_session(cmd_args, study=study) as sess:
            if all_jobs:
                results = sess.backfill_all_job_models(timeout=cmd_args.timeout)
            else:
                results = [sess.backfill_job_model(job_id, timeout=cmd_args.timeout)]
    except JobNotFound:
        output_error("JOB_NOT_FOUND", job_id=job_id, detail=f"searched study '{study}'")
    except AuthorizationError as e:
        output_error("NOT_AUTHORIZED", detail=str(e))
    except NoConnection as e:
        output_error("CONNECTION_FAILED", exit_code=2, detail=str(e))
    except BackfillFailed as e:
        output_error_message("BACKFILL_FAILED", str(e))
    if is_json_mode():
        output_ok({"results": results})
    else:
        for r in results:
            print_human(f"job {r.get('job_id')}: {r.get('outcome')}: {r.get('message')}")
