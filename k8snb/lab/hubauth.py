"""The lab hub's authenticator: a password of their own for each learner.

JupyterHub's SharedPasswordAuthenticator gives the whole class one password, and with it everyone can
log in as everyone else (JupyterHub's documentation says as much: only for users who need no
protection from each other). This one reads `name password` lines from a file of mode 0600 that the
teacher hands out line by line, and compares in constant time. Imported by the hub's process only
(jupyterhub is the `classroom` extra).
"""
from __future__ import annotations

import hmac
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from .hub import read_passwords


class LearnerPasswordAuthenticator(Authenticator):
    passwords_file = Unicode(help="`name password` per line, mode 0600").tag(config=True)

    async def authenticate(self, handler, data):
        """The learner's name if their own password was given. The file is read at each login, so
        a learner added by `classroom up --hub` can log in without a restart."""
        wanted = read_passwords(Path(self.passwords_file)).get(data.get("username", ""))
        given = data.get("password", "")
        if wanted is not None and hmac.compare_digest(wanted.encode(), given.encode()):
            return data["username"]
        return None
