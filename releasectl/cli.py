"""The `releasectl` command line: verbs in the operator's words, each a thin layer over the core.

Subcommands live in `releasectl/commands/` and are imported only when invoked, so a rollback at
3 a.m. never pays for torch, vllm, dvc or scipy.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from releasectl import __version__
from releasectl.errors import ExitCode, ReleasectlError

# name -> ("module:attribute", one-line help). The help is repeated here so `--help` lists every
# command without importing any of them.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": (
        "releasectl.commands.validate:validate",
        "Validate a manifest and run the five-item production checklist.",
    ),
    "schema": ("releasectl.commands.manifest_cmds:schema", "Print the manifest's JSON Schema."),
    "diff": ("releasectl.commands.manifest_cmds:diff", "Show what changed in the pins between two releases."),
    "new": ("releasectl.commands.manifest_cmds:new", "Scaffold the next release from an existing one."),
    "capacity": (
        "releasectl.commands.capacity:capacity",
        "Print the capacity plan: GPUs, cost and memory fit.",
    ),
    "replay": ("releasectl.commands.replay:replay", "Replay the frozen suite on the release's pinned model."),
    "merge": ("releasectl.commands.replay:merge", "Merge sharded run directories into one run."),
    "run-key": (
        "releasectl.replay.cache:run_key",
        "Print a replay's cache key, or verify a cached run against it.",
    ),
    "gate": ("releasectl.commands.gate:gate", "Evaluate promotion rules on a run against a baseline."),
    "report": ("releasectl.commands.report:report", "Render gate.json as a Markdown PR report."),
    "github": ("releasectl.commands.github:github", "Post the sticky PR comment and the commit status."),
    "promote": ("releasectl.commands.channels:promote", "Point a channel at a release that passed its gate."),
    "rollback": ("releasectl.commands.channels:rollback", "Re-point a channel to an earlier release, fast."),
    "rollout": (
        "releasectl.commands.channels:rollout",
        "Step a channel's traffic to a release (5→20→50→100 %), each step gated anytime-validly.",
    ),
    "history": ("releasectl.commands.channels:history", "Show the channel history (the audit trail)."),
    "status": (
        "releasectl.commands.channels:status",
        "Show each channel, its release, gate verdict and age.",
    ),
    "monitor": (
        "releasectl.commands.production:monitor",
        "Compute production metrics from inference logs and fire alerts.",
    ),
    "canary": (
        "releasectl.commands.production:canary",
        "Evaluate the canary rules on canary vs baseline logs.",
    ),
    "feedback": (
        "releasectl.commands.production:feedback",
        "Run the feedback-to-data flywheel on inference logs.",
    ),
    "deploy": (
        "releasectl.commands.deploy:deploy",
        "Render what serves a channel's release (vllm serve, Kubernetes).",
    ),
    "demo": ("releasectl.commands.demo:demo", "Run the release-PR flow end to end on the embedded model."),
    "import": (
        "releasectl.commands.imports:import_group",
        "Import lm-eval, inspect or promptfoo results as a run the gate can pair.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="releasectl")
def cli() -> None:
    """Carry a post-trained LLM release from pull request to production and back.

    \b
    Typical flow:
      releasectl validate releases/v1.3.yaml     # pins + production checklist
      releasectl replay releases/v1.3.yaml       # frozen suite on the pinned model
      releasectl gate releases/v1.3.yaml --run runs/v1.3 --baseline-run runs/v1.2
      releasectl report runs/v1.3/gate.json --out report.md
      releasectl promote v1.3 --to staging
      releasectl rollback --reason "p95 spike"   # incident: back to the previous release

    Exit codes: 0 ok/promote, 1 the answer is no, 2 bad input, 3 environment failure.
    """


def _render_error(err: ReleasectlError) -> None:
    from releasectl.console import current_format, emit_json

    if current_format() == "json":
        emit_json(err.to_dict())
        return
    if current_format() == "github":
        from releasectl.github.annotations import annotation

        for p in err.problems or []:
            sys.stdout.write(annotation("error", p) + "\n")
    lines = [f"error: {err.message}"]
    lines += [f"  {p.render()}" for p in err.problems]
    if err.hint:
        lines.append(f"hint: {err.hint}")
    sys.stderr.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the command and maps every failure to an exit code without a traceback."""
    try:
        result: Any = cli.main(args=argv, prog_name="releasectl", standalone_mode=False)
    except ReleasectlError as err:
        _render_error(err)
        return int(err.exit_code)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except click.ClickException as e:
        e.show()
        return int(ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in releasectl, not the user's input
        if os.environ.get("RELEASECTL_DEBUG"):
            raise
        sys.stderr.write(
            f"internal error: {type(e).__name__}: {e}\n"
            "This is a bug in releasectl. Re-run with RELEASECTL_DEBUG=1 for the traceback and report it.\n"
        )
        return int(ExitCode.ENVIRONMENT)
    return int(result or 0)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
