"""The client CLI: ``ecsd server|job|image|keypair ...`` for people, on top of the public HTTP API.

It works against any ecsd endpoint over HTTP only, with the credentials file ``ecsd serve`` writes,
and imports nothing of the server (``ecsd.domain``, ``ecsd.store``, ``ecsd.engine``, ``ecsd.drivers``,
nor ``ecsd.config``, which imports them). docs/client-cli.md describes the commands.

    http.py      Client: endpoint, IAM token, get/post/delete, error bodies -> exceptions, Retry-After
    session.py   the options every command has, the credentials file, exit codes, error -> one line
    output.py    JSON and plain tables on stdout
    progress.py  waiting for a job, with a live display on stderr
    servers.py   server list/show/create/change-os/reinstall-os
    jobs.py      job show/wait, and what a command that starts a job prints
    images.py    image list, finding an image by name or id
    keypairs.py  keypair list/create
"""

from __future__ import annotations

import click

from ecsd.cli.client.images import image
from ecsd.cli.client.jobs import job
from ecsd.cli.client.keypairs import keypair
from ecsd.cli.client.servers import server

GROUPS: tuple[click.Group, ...] = (server, job, image, keypair)


def register(main: click.Group) -> None:
    """Add the client's command groups to the ``ecsd`` command."""
    for group in GROUPS:
        main.add_command(group)
