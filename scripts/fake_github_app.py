#!/usr/bin/env python3
"""A tiny fake GitHub API for scripts/bench.sh: the GitHub App endpoints helperd calls.

It answers as GitHub documents
(https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app):
POST /app/installations/{id}/access_tokens -> 201 with token (about 520 characters, as
GitHub's new installation tokens), expires_at one hour ahead, permissions and
repository_selection; GET /app; GET /orgs|users/{login}/installation and
/repos/{owner}/{repo}/installation; DELETE /installation/token -> 204.

It checks the JWT's claims as GitHub does (iss the app id, iat not in the future, exp
at most 10 minutes ahead) but not its signature (the standard library has no RSA; the
integration tests' fake does that): the bench measures serving, not minting. Stdlib only,
since python3 is on every machine that runs the bench.

Usage: fake_github_app.py PORT_FILE [LOG_FILE]. Listens on 127.0.0.1 on a free port, writes
the port to PORT_FILE once it accepts connections, appends one line per request
("METHOD PATH STATUS") to LOG_FILE, so the bench can count the mints.
"""

import base64
import datetime
import json
import os
import re
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_ID = 1
INSTALLATION = 1
MINT = re.compile(r"^/app/installations/(\d+)/access_tokens$")
INSTALLATION_OF = re.compile(r"^/(orgs|users)/[^/]+/installation$|^/repos/[^/]+/[^/]+/installation$")
LOG = sys.argv[2] if len(sys.argv) > 2 else None


def rfc3339(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as GitHub

    def reply(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if LOG:
            with open(LOG, "a") as log:
                log.write(f"{self.command} {self.path} {status}\n")

    def bearer(self):
        return self.headers.get("Authorization", "").startswith("Bearer ")

    def app_jwt(self):
        """Whether the request carries a JWT whose claims GitHub would take (unsigned check)."""
        auth = self.headers.get("Authorization", "")
        parts = auth[len("Bearer "):].split(".") if auth.startswith("Bearer ") else []
        if len(parts) != 3:
            return False
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return False
        now = time.time()
        return (str(claims.get("iss")) == str(APP_ID)
                and claims.get("iat", now + 1) <= now
                and now < claims.get("exp", 0) <= now + 600)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self):
        if not self.app_jwt():
            return self.reply(401, {"message": "A JSON web token could not be decoded"})
        if self.path == "/app":
            return self.reply(200, {"id": APP_ID, "slug": "helperd-bench"})
        if INSTALLATION_OF.match(self.path):
            return self.reply(200, {"id": INSTALLATION, "account": {"login": "acme"}})
        self.reply(404, {"message": "Not Found"})

    def do_POST(self):
        asked = self.body()
        match = MINT.match(self.path)
        if not self.app_jwt():
            return self.reply(401, {"message": "A JSON web token could not be decoded"})
        if not match or int(match.group(1)) != INSTALLATION:
            return self.reply(404, {"message": "Not Found"})
        now = datetime.datetime.now(datetime.timezone.utc)
        self.reply(201, {
            # ghs_ and 516 more: the length of GitHub's new installation tokens.
            "token": "ghs_" + secrets.token_hex(258),
            "expires_at": rfc3339(now + datetime.timedelta(hours=1)),
            "permissions": asked.get("permissions") or {"contents": "read", "metadata": "read"},
            "repository_selection": "selected" if asked.get("repositories") else "all",
        })

    def do_DELETE(self):
        if self.path == "/installation/token" and self.bearer():
            return self.reply(204)
        self.reply(404, {"message": "Not Found"})

    def log_message(self, *args):
        pass  # one line per request goes to LOG_FILE, without headers


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    # Renamed into place: the bench never reads a half-written port.
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
