#!/usr/bin/env python3
"""What one operation costs the server, in CPU instructions, with a setting on and off.

Throughput on a shared two-core machine moves by more than the few per cent a setting like the
audit log costs. Instructions counted by valgrind's callgrind do not: for the same binary and
the same requests the count repeats, whatever else the machine is doing. This script runs
`telegram-oidc serve` under callgrind twice per setting, once with SMALL and once with LARGE
operations sent over keep-alive connections (`--conns`, default one after another on one), and prints
(instructions(LARGE) - instructions(SMALL)) / (LARGE - SMALL): the instructions of one more
operation, with the start-up and shut-down cancelled out.

    python3 bench/instructions.py --bin target/release/telegram-oidc \\
        --workload cc-opaque --set audit.enabled=true --set audit.enabled=false

Workloads: `cc-opaque` (POST /token, client_credentials, opaque token) and `login` (the
benchmark's complete login: /authorize, the widget callback, /authorize/continue, /token with
PKCE, /userinfo; an ES256 ID token; a new Telegram user each time). Needs valgrind.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BOT_TOKEN = "5550001111:BENCH-bot-token_for-the-benchmark"
REDIRECT_URI = "https://app.bench.test/callback"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory, port, setting):
    token = os.path.join(directory, "bot_token")
    with open(token, "w") as f:
        f.write(BOT_TOKEN + "\n")
    section, _, rest = setting.partition(".")
    key, _, value = rest.partition("=")
    path = os.path.join(directory, "telegram-oidc.toml")
    with open(path, "w") as f:
        f.write(
            f'''issuer = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
database_url = "sqlite://{directory}/bench.db"
keys_dir = "{directory}/keys"

[telegram]
bot_username = "bench_login_bot"
bot_token_file = "{token}"

[rate_limits]
enabled = false

[{section}]
{key} = {value}
'''
        )
    return path


def cli(binary, config, *args):
    out = subprocess.run([binary, "--config", config, *args], check=True, capture_output=True, text=True)
    return out.stdout


def register(binary, config):
    service = json.loads(cli(binary, config, "client", "add", "--json", "--name", "svc", "--service-account",
                             "--scopes", "api:read", "--access-token-format", "opaque"))
    web = json.loads(cli(binary, config, "client", "add", "--json", "--name", "web", "--redirect-uri", REDIRECT_URI,
                         "--id-token-alg", "es256", "--access-token-format", "opaque", "--skip-consent"))
    return service, web


def basic(app):
    raw = f"{urllib.parse.quote(app['client_id'], safe='')}:{urllib.parse.quote(app['client_secret'], safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


class Conn:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        return r.status, r.headers, data


def expect(status, wanted, what, data):
    if status != wanted:
        sys.exit(f"{what}: {status} {data[:300]!r}")


def cc_opaque(conn, service, _web, _n):
    status, _, data = conn.request("POST", "/token", "grant_type=client_credentials", {"authorization": basic(service)})
    expect(status, 200, "client_credentials", data)


def widget_hash(fields):
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    key = hashlib.sha256(BOT_TOKEN.encode()).digest()
    return hmac.new(key, check.encode(), hashlib.sha256).hexdigest()


def location_query(headers, name):
    location = headers["location"]
    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)[name][0], location


def login(conn, _service, web, n):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": web["client_id"], "redirect_uri": REDIRECT_URI,
        "scope": "openid profile", "state": "s" + str(n), "nonce": "n" + str(n),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    status, headers, data = conn.request("GET", f"/authorize?{query}")
    expect(status, 303, "authorize", data)
    req, _ = location_query(headers, "req")
    user = 9_000_000_000 + int(time.time() * 1000) % 1_000_000_000 * 10 + n
    fields = {"id": str(user), "first_name": "Bench", "username": f"bench{user}", "auth_date": str(int(time.time()))}
    fields["hash"] = widget_hash(fields)
    status, headers, data = conn.request("GET", f"/login/telegram/{req}?{urllib.parse.urlencode(fields)}")
    expect(status, 303, "widget callback", data)
    cookie = headers["set-cookie"].split(";")[0]
    nxt = urllib.parse.urlsplit(headers["location"])
    status, headers, data = conn.request("GET", f"{nxt.path}?{nxt.query}", headers={"cookie": cookie})
    expect(status, 302, "authorize/continue", data)
    code, _ = location_query(headers, "code")
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                                   "code_verifier": verifier})
    status, _, data = conn.request("POST", "/token", body, {"authorization": basic(web)})
    expect(status, 200, "code redemption", data)
    access = json.loads(data)["access_token"]
    status, _, data = conn.request("GET", "/userinfo", headers={"authorization": f"Bearer {access}"})
    expect(status, 200, "userinfo", data)


WORKLOADS = {"cc-opaque": cc_opaque, "login": login}
KEEP = None


def run(binary, workload, setting, count, keys, conns):
    with tempfile.TemporaryDirectory(prefix="tgoidc-instr-") as directory:
        port = free_port()
        config = write_config(directory, port, setting)
        os.symlink(keys, os.path.join(directory, "keys"))
        cli(binary, config, "migrate")
        service, web = register(binary, config)
        out = os.path.join(directory, "callgrind.out")
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "--config", config, "serve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 300
            while True:
                try:
                    status, _, _ = Conn(port).request("GET", "/readyz")
                    if status == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not start under valgrind")
                time.sleep(0.5)
            def worker(first):
                conn = Conn(port)
                for n in range(first, count, conns):
                    WORKLOADS[workload](conn, service, web, n)
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=300)
        if KEEP:
            import shutil
            shutil.copy(out, os.path.join(KEEP, f"callgrind.{workload}.{setting}.{count}.out"))
        with open(out) as f:
            text = f.read()
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        return int(total.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cc-opaque")
    parser.add_argument("--set", action="append", required=True, help="section.key=value (TOML value), one per run")
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=350)
    parser.add_argument("--conns", type=int, default=1,
                        help="connections sending at once (writes made at the same time share a commit)")
    parser.add_argument("--keep", help="a folder to keep the callgrind files in (for callgrind_annotate)")
    args = parser.parse_args()
    global KEEP
    KEEP = args.keep
    binary = os.path.abspath(args.bin)
    with tempfile.TemporaryDirectory(prefix="tgoidc-keys-") as keys:
        # The signing keys are made once, outside the measurement, and shared by every run.
        with tempfile.TemporaryDirectory() as d:
            config = write_config(d, free_port(), args.set[0])
            os.rmdir(keys)
            os.makedirs(keys)
            os.symlink(keys, os.path.join(d, "keys"))
            cli(binary, config, "keys", "list")
        results = []
        for setting in args.set:
            small = run(binary, args.workload, setting, args.small, keys, args.conns)
            large = run(binary, args.workload, setting, args.large, keys, args.conns)
            per_op = (large - small) / (args.large - args.small)
            results.append((setting, per_op))
            print(f"{args.workload:10} {args.conns:3} conns {setting:22} {per_op:12,.0f} instructions per operation "
                  f"({small:,} for {args.small}, {large:,} for {args.large})", flush=True)
        base = results[0][1]
        for setting, per_op in results[1:]:
            print(f"{args.workload:10} {setting:28} {100 * (per_op - base) / base:+.1f} % against {results[0][0]}")


if __name__ == "__main__":
    main()
