"""The ``ecsd`` command. One module per command family:

    base.py    the ``main`` group and what every command shares (options, admin store, output)
    serve.py   serve, worker, db upgrade
    iam.py     users, projects, keys (administration on the database)
    quotas.py  quotas (administration on the database)
    client/    server, job, image, keypair: a client of the HTTP API of any endpoint (docs/client-cli.md)
    drivers/local/cli.py   images (the local driver's image store)
"""

from __future__ import annotations

from ecsd.cli import iam, quotas, serve  # noqa: F401 - registers their commands on main
from ecsd.cli.base import main
from ecsd.cli.client import register as _register_client

_register_client(main)


def _attach_driver_commands() -> None:
    from ecsd.drivers.local.cli import images as images_group

    main.add_command(images_group)


_attach_driver_commands()

__all__ = ["main"]
