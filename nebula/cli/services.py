"""``nebula up`` and the single services it supervises (also what Compose runs)."""

from __future__ import annotations

import argparse
import importlib
import os
from typing import TYPE_CHECKING

from nebula.cli.base import Commands, add_command, own_settings
from nebulacore.config import Settings
from nebulacore.logs import setup_logging
from nebulacore.private import PRIVATE_UMASK

if TYPE_CHECKING:
    from nebulaqueue.relay import Enqueue

# service name -> "module:function" taking Settings; imported lazily so that
# `nebula origin` never loads the s3proxy and vice versa.
SERVICES = {
    "s3proxy": ("s3proxy.server:run", "the S3 front door (NEBULA_BIND:NEBULA_S3PROXY_PORT)"),
    "origin": ("origin.server:run", "the HLS origin (NEBULA_BIND:NEBULA_ORIGIN_PORT)"),
    "worker": ("transcoder.worker:run", "one transcoder worker (a Huey consumer)"),
}


UP_HELP = """\
ports and variables (environment, or a NEBULA_CONFIG_FILE of NEBULA_X=value lines):
  NEBULA_DATA_DIR      everything it keeps: catalog, queue, keys, storage (default ./data)
  NEBULA_BIND          the address every listener binds to (default 127.0.0.1)
  NEBULA_S3PROXY_PORT  the S3 endpoint for aws, rclone, s3cmd, boto3 (default 9000)
  NEBULA_ORIGIN_PORT   the HLS origin players stream from (default 8080)
  NEBULA_STORAGE_PORT  the embedded SeaweedFS, on 127.0.0.1 only (default 8333)
  NEBULA_ALLOW_CIDRS   client networks allowed (default loopback and the tailnet)
  NEBULA_INGEST_BUCKETS  buckets transcoded on a new catalog (default media;
                       then `nebula buckets`)
  NEBULA_LOG_FORMAT    text or json (default: text on a terminal, json otherwise)

It records its ports in <data dir>/run/up.json: the other commands (status, assets url,
upload-form, keys create) run in another shell with the same --data-dir find them there."""


def register(commands: Commands) -> None:
    up = add_command(
        commands, "up", "start the whole system on the embedded default", epilog=UP_HELP
    )
    up.add_argument(
        "--stop-leftovers",
        action="store_true",
        help="first stop what an earlier nebula up on this data directory left running",
    )
    up.set_defaults(handler=run_up)
    storage = add_command(commands, "storage", "run the embedded SeaweedFS storage alone")
    storage.set_defaults(handler=run_storage)
    for name, (_target, help_text) in SERVICES.items():
        parser = add_command(commands, name, f"run {help_text} alone")
        parser.set_defaults(handler=run_service, service=name)


def run_up(args: argparse.Namespace) -> int:
    from nebula.embedded import Supervisor

    settings = own_settings(args)
    setup_logging(settings, "up")
    return Supervisor(settings, stop_leftovers=args.stop_leftovers).run()


def run_storage(args: argparse.Namespace) -> int:
    from nebula import storage

    storage.exec_storage(own_settings(args))
    return 0  # not reached: exec replaced the process


def run_service(args: argparse.Namespace) -> int:
    settings = own_settings(args)
    # What a service writes (the origin's cache, the worker's work files, the catalog and
    # queue files it creates) is its user's alone, whether nebula up started it or not.
    os.umask(PRIVATE_UMASK)
    setup_logging(settings, args.service)
    module_name, _, function = SERVICES[args.service][0].partition(":")
    runner = getattr(importlib.import_module(module_name), function)
    if args.service == "s3proxy":
        runner(settings, enqueue=upload_relay(settings))
    elif args.service == "origin":  # the queue's depth on /metrics, as on the s3proxy
        from nebulaqueue.metrics import queue_gauges

        runner(settings, more_gauges=[queue_gauges])
    else:
        runner(settings)
    return 0


def upload_relay(settings: Settings) -> Enqueue:
    """Where the s3proxy relays upload events: the transcoder's tasks on this process's
    queue (the one upward arrow, shell -> transcoder: the services never import each other).

    Bound on first use, in the process that relays: the s3proxy's workers are forked from
    this process, and a queue opened before the fork (Huey's SQLite connection) must not be
    shared by them."""

    def enqueue(topic: str, job_id: int) -> None:
        from transcoder.tasks import tasks_for

        tasks_for(settings).enqueue(topic, job_id)

    return enqueue
